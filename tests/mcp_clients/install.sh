#!/usr/bin/env bash
# Install the pinned third-party MCP clients that tests/test_mcp_clients.py drives against a real `lattice serve`:
#   node_modules/   the npm packages of package-lock.json: @modelcontextprotocol/sdk 1.x, @modelcontextprotocol/client
#                   2.x, @modelcontextprotocol/inspector (its CLI), eventsource (a browser EventSource, WHATWG rules)
#   py-mcp1/        a venv with the Python MCP SDK 1.x (the project's own venv has 2.x, from the test extra)
# Idempotent; .ci/run runs it. Without these, the tests skip (unless LATTICE_REQUIRE_MCP_CLIENTS=1).
#
# Not `npm ci`: vite (a dependency of the inspector) names a Windows-only optional dependency
# (napi-windows-process-start-time) that the registry did not have when the lock was made; it has it
# now and the lock records it (2026-12), but `npm install` with the committed lock, which installs
# exactly the locked versions and must leave the lock unchanged, stays the check either way.
set -euo pipefail
cd "$(dirname "$0")"
PY_MCP1="1.30.0"

lock=$(mktemp)
cp package-lock.json "$lock"
npm install --no-audit --no-fund --loglevel=error 2> >(grep -v "EBADENGINE\|^npm warn  \|^npm warn }" >&2 || true)
if ! cmp -s package-lock.json "$lock"; then
    cp "$lock" package-lock.json
    echo "tests/mcp_clients: npm install wanted to change package-lock.json; refresh it on purpose" >&2
    exit 1
fi
rm -f "$lock"
npm ls --all >/dev/null 2>&1 || { npm ls --all >&2; exit 1; }  # nothing missing, nothing off the lock

if ! py-mcp1/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$PY_MCP1')" 2>/dev/null; then
    rm -rf py-mcp1
    python3 -m venv py-mcp1
    py-mcp1/bin/pip install -q --disable-pip-version-check "mcp==$PY_MCP1"
fi
v() { node -p "require('./node_modules/$1/package.json').version"; }
echo "MCP clients: @modelcontextprotocol/sdk $(v @modelcontextprotocol/sdk), @modelcontextprotocol/client" \
     "$(v @modelcontextprotocol/client), @modelcontextprotocol/inspector $(v @modelcontextprotocol/inspector)," \
     "eventsource $(v eventsource), python mcp $PY_MCP1"
