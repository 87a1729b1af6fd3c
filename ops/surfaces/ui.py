"""The web inspector: static files under ``/ui``, served by the same process as the API.

The inspector is a set of static files shipped inside the package
(``ops/surfaces/ui/``: ``index.html``, ES modules, CSS and the vendored libraries
under ``vendor/``, listed in ``ui/VENDORED.md``); there is no build step. The page
reads everything through the public API (``POST /api/v1/invoke``, the job and agent
event streams), so it sees exactly what any other client sees.

* ``GET /ui`` and ``GET /ui/``: ``index.html``, with the server's authentication
  mode in ``<html data-auth="token|none">`` so that the page asks for a token
  before its first API call rather than after a 401.
* ``GET /ui/{file}`` and ``GET /ui/vendor/{file}``: the other files (``.js``,
  ``.css``, ``.svg``, ``.html`` only), with an ``ETag``; a matching
  ``If-None-Match`` is answered 304.

These routes hold no data, so they are served without a bearer token
(:func:`is_public`); every API call the page makes carries ``Authorization:
Bearer`` and stays protected. The browser-origin check applies as to every route.
Every reply forbids framing and carries a Content-Security-Policy that allows
only this origin's scripts (plus the page's inline import map, by its hash).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from aiohttp import web

from .common import TOKENS
from .routes import Param, Route

__all__ = ["UI_DIR", "ROUTES", "index", "static_file", "vendor_file", "is_public", "security_headers"]

#: the inspector's static files, inside the package
UI_DIR = Path(__file__).with_name("ui")

_TYPES = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml"}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_AUTH_MARK = 'data-auth="none"'
_cache: dict[Path, tuple[int, bytes, str]] = {}


def _load(path: Path) -> tuple[bytes, str]:
    """The bytes of a file of the inspector and their ETag (read again only when the file changed)."""
    mtime = path.stat().st_mtime_ns
    hit = _cache.get(path)
    if hit is None or hit[0] != mtime:
        body = path.read_bytes()
        hit = _cache[path] = (mtime, body, '"' + hashlib.blake2s(body, digest_size=12).hexdigest() + '"')
    return hit[1], hit[2]


def _inline_script_hashes(html: bytes) -> str:
    """CSP sources (``'sha256-...'``) of the inline ``<script>`` elements of a page (its import map)."""
    out = []
    for m in re.finditer(rb"<script[^>]*>(.*?)</script>", html, re.S):
        if m.group(1).strip():
            out.append("'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'")
    return " ".join(out)


def security_headers(script_hashes: str = "") -> dict[str, str]:
    """The headers of every inspector reply: a strict CSP, no framing, no sniffing, no referrer.

    Args:
        script_hashes: extra ``script-src`` sources (the page's inline import map).
    """
    csp = ("default-src 'none'; script-src 'self'" + (f" {script_hashes}" if script_hashes else "") +
           "; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _send(request: web.Request, path: Path, *, auth: bool = False) -> web.Response:
    if path.suffix not in _TYPES or not path.is_file():
        raise web.HTTPNotFound()
    body, etag = _load(path)
    hashes = ""
    if path.suffix == ".html":
        hashes = _inline_script_hashes(body)
        if auth:
            body, etag = body.replace(_AUTH_MARK.encode(), b'data-auth="token"', 1), etag[:-1] + '-t"'
    headers = {**security_headers(hashes), "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=_TYPES[path.suffix], charset="utf-8", headers=headers)


async def index(request: web.Request) -> web.Response:
    """``GET /ui``: the inspector's page, marked with the server's authentication mode."""
    return _send(request, UI_DIR / "index.html", auth=request.app.get(TOKENS) is not None)


async def static_file(request: web.Request) -> web.Response:
    """``GET /ui/{file}``: one of the inspector's files (404 for any other name)."""
    name = request.match_info["file"]
    if not _NAME.match(name):
        raise web.HTTPNotFound()
    return _send(request, UI_DIR / name)


async def vendor_file(request: web.Request) -> web.Response:
    """``GET /ui/vendor/{file}``: one of the vendored libraries (404 for any other name)."""
    name = request.match_info["file"]
    if not _NAME.match(name):
        raise web.HTTPNotFound()
    return _send(request, UI_DIR / "vendor" / name)


def is_public(request: web.Request) -> bool:
    """Whether ``request`` is for the inspector's static files, which are served without a token.

    Decided by the handler the router matched (not by the path text), so an API
    route can never become public by its name.
    """
    route = request.match_info.route
    return getattr(route, "handler", None) in _PUBLIC


_FILE = Param("file", "path", {"type": "string"}, "a file name")

#: the inspector's routes (left out of the OpenAPI document)
ROUTES = (
    Route("GET", "/ui", index, "ui", "The web inspector", documented=False),
    Route("GET", "/ui/", index, "uiSlash", "The web inspector", documented=False),
    Route("GET", "/ui/{file}", static_file, "uiFile", "A file of the web inspector", parameters=(_FILE,),
          documented=False),
    Route("GET", "/ui/vendor/{file}", vendor_file, "uiVendorFile", "A vendored library of the web inspector",
          parameters=(_FILE,), documented=False),
)

_PUBLIC = frozenset({index, static_file, vendor_file})
