"""Helpers of the inspector's browser tests: the API over HTTP, and a page that records what went wrong.

Chromium: ``$LATTICE_CHROMIUM`` or ``/usr/bin/chromium``; screenshots: ``$LATTICE_ARTIFACTS/ui`` or
``test-artifacts/ui`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("LATTICE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("LATTICE_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) / "ui"
#: what Chromium needs to run headless in a container, without reaching out anywhere
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN_A = "token-of-alice-0123456789"
TOKEN_B = "token-of-bob-0123456789ab"

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "ARTIFACTS", "TOKEN_A", "TOKEN_B", "api", "ok", "Page"]


def api(port: int, operation: str, input: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
    """``POST /api/v1/invoke``: the job (raises on an HTTP error)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invoke", method="POST",
                                 data=json.dumps({"operation": operation, "input": input or {}}).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def ok(port: int, operation: str, input: dict[str, Any] | None = None, token: str | None = None) -> Any:
    """The output of an operation that must complete."""
    job = api(port, operation, input, token)
    assert job["status"] == "COMPLETE", job
    return job["output"]


class Page:
    """A browser page on the inspector, recording console errors, page errors and API requests."""

    def __init__(self, browser: Any, port: int, width: int = 1200, height: int = 860):
        self.port = port
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(8000)
        self.errors: list[str] = []
        self.requests: list[Any] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: "/api/" in r.url and self.requests.append(r))

    def open(self, hash_: str = "") -> Any:
        self.page.goto(f"http://127.0.0.1:{self.port}/ui{hash_}")
        return self.page

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def invoked(self, operation: str) -> list[dict[str, Any]]:
        """The inputs of the ``operation`` calls the page made."""
        out = []
        for r in self.requests:
            if r.url.endswith("/api/v1/invoke") and r.post_data:
                body = json.loads(r.post_data)
                if body.get("operation") == operation:
                    out.append(body.get("input") or {})
        return out

    def close(self) -> None:
        self.context.close()
