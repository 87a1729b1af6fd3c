"""How fast does the inspector first paint an agent with 3,000 versions and 100,000 history messages?

A real ``lattice serve`` (durable LMDB in a temporary directory) holds two agents:

* ``Big``: created with ``--messages`` history messages (default 100,000), then ``--versions``
  versions (default 3,000: each ``agent:request`` with ``wait: true`` answered by ``echo`` adds a
  task version and a run version, so half as many runs, each appending two messages);
* ``Small`` (the peer in the same run): 10 versions, 5 history messages;
* ``Fam``: a fork family of ``--forks`` agents (default 300): ``Fam`` (40 versions) with a fork at
  every 4th of its versions in turn, and every tenth fork forked again (its version graph).

Debian's Chromium, headless under Playwright, opens each agent's views in a fresh browser context
(nothing cached) ``--reps`` times. *First paint* is from the start of navigation to the view showing
its data (the timeline's newest runs; the version graph laid out; the first page of
``state/history``), read in the page with ``performance.now()`` when the element appears, plus
Chromium's own first-contentful-paint. The target (issue 15): the timeline of ``Big`` under 1 s.

The version graph is measured for ``Big``, ``Small``, ``Fam`` (the family's root) and ``Fam-9`` (a
fork with forks of its own).

Run: ``python bench/ui_first_paint.py`` (``--quick``: 10,000 messages, 600 versions, 100 forks, 3 reps).
Needs the test extra (``playwright``) and ``/usr/bin/chromium`` (``tests/ui/install_chromium.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.serve import free_port, serve  # noqa: E402
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

VIEWS = {  # view -> (hash, the element that shows its data)
    "timeline": ("#/agent/{a}/timeline", ".timeline[data-ready=timeline] li.run, .timeline[data-ready=timeline] p.muted"),
    "versions": ("#/agent/{a}/versions", "[data-ready=graph]"),
    "state/history": ("#/agent/{a}/state?path=state/history", "ol.items > li"),
}


def invoke(port: int, op: str, inp: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invoke", method="POST",
                                 data=json.dumps({"operation": op, "input": inp}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        job = json.loads(r.read())
    assert job["status"] == "COMPLETE", job
    return job["output"]


def make_agent(port: int, name: str, messages: int, versions: int) -> None:
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "lorem ipsum " * 3}
               for i in range(messages)]
    invoke(port, "agent:create", {"agentId": name, "config": "echo", "state": {"history": history}})
    for i in range(versions // 2):  # create + 2 per request: at least `versions`
        invoke(port, "agent:request", {"agentId": name, "input": f"task {i}", "wait": True})


def make_family(port: int, forks: int) -> int:
    """``Fam`` and ``forks`` agents forked from it (every tenth forked again); the family's size."""
    make_agent(port, "Fam", 5, 40)
    made = 1
    for i in range(forks):
        if i % 10 == 9 and i > 9:
            invoke(port, "agent:fork", {"sourceId": f"Fam-{i - 10}", "agentId": f"Fam-{i}", "at": 0})
        else:
            invoke(port, "agent:fork", {"sourceId": "Fam", "agentId": f"Fam-{i}", "at": (i * 4) % 40})
        made += 1
    return made


def measure(browser, port: int, agent: str, view: str) -> tuple[float, float]:
    """(ms to the view's data, ms to first contentful paint) in a fresh context."""
    hash_, selector = VIEWS[view]
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # for wait_for_function
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("""
      new MutationObserver((_, obs) => {
        if (document.querySelector(%s)) { window.__ready = performance.now(); obs.disconnect(); }
      }).observe(document, {childList: true, subtree: true, attributes: true});
    """ % json.dumps(selector))
    page.goto(f"http://127.0.0.1:{port}/ui{hash_.format(a=agent)}")
    try:
        page.wait_for_function("window.__ready !== undefined", timeout=30000)
    except Exception:
        raise RuntimeError(f"{agent} {view}: never ready; errors: {errors}") from None
    ready = page.evaluate("window.__ready")
    fcp = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")
    ctx.close()
    assert not errors, errors
    return ready, fcp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--versions", type=int, default=3_000)
    ap.add_argument("--forks", type=int, default=300)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.messages, a.versions, a.forks, a.reps = 10_000, 600, 100, 3
    if not os.path.exists(CHROMIUM):
        sys.exit(f"Chromium not found at {CHROMIUM}: bash tests/ui/install_chromium.sh")
    from playwright.sync_api import sync_playwright

    tmp = tempfile.mkdtemp(prefix="ui-bench-")
    port = free_port()
    log = open(Path(tmp) / "serve.log", "wb")
    proc = serve(port, "--data", str(Path(tmp) / "data"), "--max-body", str(64 << 20), output=log)
    try:
        t = time.perf_counter()
        make_agent(port, "Big", a.messages, a.versions)
        make_agent(port, "Small", 5, 10)
        family = make_family(port, a.forks)
        built = time.perf_counter() - t
        head = invoke(port, "agent:history", {"agentId": "Big", "limit": 1})["versions"][0]["seq"]
        count = invoke(port, "covia:list", {"path": "g/Big/state/history", "limit": 1})["count"]
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            measure(browser, port, "Small", "timeline")  # warm the server's and the OS's caches once
            for agent in ("Big", "Small"):
                for view in VIEWS:
                    results[(agent, view)] = [measure(browser, port, agent, view) for _ in range(a.reps)]
            for agent in ("Fam", "Fam-9") if a.forks > 19 else ("Fam",):  # Fam-9 has forks from 20 on
                results[(agent, "versions")] = [measure(browser, port, agent, "versions") for _ in range(a.reps)]
            chromium = browser.version
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"# inspector first paint: Big = {head + 1:,} versions, {count:,} history messages "
          f"(built in {built:.0f} s); Small = 10 versions; Fam = a fork family of {family} agents; "
          f"{a.reps} fresh contexts each")
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"Chromium {chromium}, playwright {version('playwright')}, aiohttp {version('aiohttp')}, "
          f"lmdb {version('lmdb')}; preact 11.2.0, htm 3.1.1, dagre 3.1.3 (vendored)")
    print()
    print("| agent | view | data shown p50 ms | min | max | first contentful paint p50 ms | Big / Small |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (agent, view), xs in results.items():
        ready = [r for r, _ in xs]
        fcp = [f for _, f in xs if f is not None]
        ratio = statistics.median(ready) / statistics.median([r for r, _ in results[("Small", view)]])
        print(f"| {agent} | {view} | {statistics.median(ready):.0f} | {min(ready):.0f} | {max(ready):.0f} | "
              f"{statistics.median(fcp) if fcp else float('nan'):.0f} | {ratio:.2f}x |")
    big = statistics.median([r for r, _ in results[("Big", "timeline")]])
    print()
    print(f"Target: Big's timeline under 1,000 ms: {big:.0f} ms, {'met' if big < 1000 else 'NOT met'}.")


if __name__ == "__main__":
    main()
