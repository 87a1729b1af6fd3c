#!/usr/bin/env bash
# Re-create vendor/ from the versions pinned in package.json / package-lock.json (see VENDORED.md).
# Needs node and npm; the inspector itself needs neither (nothing is built).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$tmp/"
(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
m="$tmp/node_modules"
v="$here/vendor"
cp "$m/preact/dist/preact.mjs" "$v/preact.mjs"
cp "$m/preact/hooks/dist/hooks.mjs" "$v/preact-hooks.mjs"
cp "$m/htm/dist/htm.module.js" "$v/htm.mjs"
cp "$m/@dagrejs/dagre/dist/dagre.esm.js" "$v/dagre.mjs"
sed -i '/^\/\/# sourceMappingURL=/d' "$v"/*.mjs   # the maps are not shipped: no request for them
cp "$m/preact/LICENSE" "$v/LICENSE-preact.txt"
cp "$m/htm/LICENSE" "$v/LICENSE-htm.txt"
cp "$m/@dagrejs/dagre/LICENSE" "$v/LICENSE-dagre.txt"
cp "$m/@dagrejs/graphlib/LICENSE" "$v/LICENSE-graphlib.txt"
(cd "$v" && sha256sum ./*.mjs)
