"""The inspector's routes over plain HTTP, against a real `lattice serve`: what is public, what stays
protected, and the headers every file is served with."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from ops.surfaces.ui import UI_DIR
from tests.ui.browser import TOKEN_A


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_page_and_its_files_load_without_a_token_and_the_api_does_not(token_server):
    status, headers, body = get(token_server, "/ui")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'data-auth="token"' in body  # the page asks for a token before its first API call
    for path in ("/ui/", "/ui/app.js", "/ui/style.css", "/ui/vendor/preact.mjs", "/ui/vendor/dagre.mjs"):
        assert get(token_server, path)[0] == 200, path
    assert get(token_server, "/ui/app.js")[1]["Content-Type"].startswith("text/javascript")
    for path in ("/api/v1/status", "/api/v1/agents/Alice/events", "/api/v1/openapi.json"):
        status, _, body = get(token_server, path)
        assert status == 401 and json.loads(body)["errorCode"] == "unauthorized", path
    assert get(token_server, "/api/v1/status", {"Authorization": f"Bearer {TOKEN_A}"})[0] == 200


def test_without_tokens_the_page_says_so(server):
    assert b'data-auth="none"' in get(server, "/ui")[2]


def test_only_the_shipped_files_are_served(server):
    for path in ("/ui/nope.js", "/ui/VENDORED.md", "/ui/package.json", "/ui/update-vendor.sh", "/ui/vendor/LICENSE-preact.txt",
                 "/ui/..%2fui.py", "/ui/vendor/..%2f..%2fui.py", "/ui/.hidden.js"):
        status, _, body = get(server, path)
        assert status == 404, path
        assert json.loads(body)["errorCode"] == "not_found"


def test_every_file_is_served_with_a_strict_policy_and_an_etag(server):
    status, headers, body = get(server, "/ui")
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+'", csp)  # the import map, by its hash
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    etag = get(server, "/ui/app.js")[1]["ETag"]
    assert get(server, "/ui/app.js", {"If-None-Match": etag})[0] == 304


def test_other_origins_are_refused_as_for_the_api(server):
    status, _, body = get(server, "/ui", {"Origin": "http://evil.example"})
    assert status == 403 and json.loads(body)["errorCode"] == "forbidden"
    assert get(server, "/ui/app.js", {"Origin": f"http://127.0.0.1:{server}"})[0] == 200


def test_the_openapi_document_leaves_the_inspector_out(server):
    doc = json.loads(get(server, "/api/v1/openapi.json")[2])
    assert not [p for p in doc["paths"] if p.startswith("/ui")]


def test_the_import_map_comes_before_any_module_is_fetched():
    """Else a module preloaded before it cannot resolve `preact` (and Chromium reports the error at random)."""
    html = (UI_DIR / "index.html").read_text()
    first_module = min(html.index('rel="modulepreload"'), html.index('<script type="module"'))
    assert html.index('<script type="importmap">') < first_module


def test_the_package_ships_every_file_the_page_loads():
    """Each file index.html and the modules import is in the package data patterns of pyproject.toml."""
    names = set(re.findall(r"""["'](/ui/[^"']+)["']""", (UI_DIR / "index.html").read_text()))
    for js in UI_DIR.glob("*.js"):
        names |= {f"/ui/{m}" for m in re.findall(r"""from '\./([\w.-]+\.js)'""", js.read_text())}
        names |= {f"/ui/{m}" for m in re.findall(r"""import\('\./([\w.-]+\.js)'\)""", js.read_text())}
    assert "/ui/versions.js" in names and "/ui/vendor/dagre.mjs" in names
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ops"]
    for name in names:
        file = UI_DIR / name.removeprefix("/ui/")
        assert file.is_file(), name
        rel = file.relative_to(root / "ops").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} matches no package-data pattern"
