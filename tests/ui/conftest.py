"""Fixtures of the inspector's browser tests: Debian's Chromium driven by Playwright, a real `lattice serve`.

Chromium is the system's (``/usr/bin/chromium``, or ``$LATTICE_CHROMIUM``): Playwright downloads no browser.
When it is missing the tests fail (not skip) and say how to install it (``tests/ui/install_chromium.sh``,
which ``.ci/run`` calls first). Screenshots go to ``test-artifacts/ui/`` (git-ignored; ``$LATTICE_ARTIFACTS``
moves it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.serve import free_port, serve
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, TOKEN_A, TOKEN_B, Page


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (the system's binary)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'", pytrace=False)
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `bash tests/ui/install_chromium.sh` "
                    "(apt-get install chromium) or set LATTICE_CHROMIUM to its path", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Any]:
    """``page_factory(port, width=1200)``: a new :class:`Page` (closed after the test)."""
    pages: list[Page] = []

    def make(port: int, width: int = 1200, height: int = 860) -> Page:
        p = Page(browser, port, width, height)
        pages.append(p)
        return p

    yield make
    for p in pages:
        p.close()


def _serve(log: Path, *args: str) -> Iterator[int]:
    """A `lattice serve --memory`; its output goes to a file (a pipe nobody reads would fill with the access
    log of the page's many requests, and block the server)."""
    port = free_port()
    with open(log, "wb") as out:
        proc = serve(port, "--memory", *args, output=out)
        try:
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[int]:
    """A `lattice serve --memory` without tokens (one per test module): its port."""
    yield from _serve(tmp_path_factory.mktemp("serve") / "serve.log")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: Any) -> Iterator[int]:
    """A `lattice serve --memory --tokens` with callers alice (TOKEN_A) and bob (TOKEN_B): its port."""
    d = tmp_path_factory.mktemp("tokens")
    (d / "tokens.json").write_text(json.dumps({TOKEN_A: "alice", TOKEN_B: "bob"}))
    yield from _serve(d / "serve.log", "--tokens", str(d / "tokens.json"))
