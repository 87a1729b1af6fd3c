"""The ``lattice`` command line: run the server, invoke operations, read paths.

Every command but ``serve`` and ``ops`` talks to a running server (``--url``,
default ``$LATTICE_URL`` or ``http://127.0.0.1:7770``).

Exit codes: 0 success; 1 the operation's job FAILED/CANCELLED/TIMEOUT or the
path does not exist; 2 the request was rejected (bad input) or the server
could not be reached.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

import click

__all__ = ["main", "DEFAULT_PORT", "DEFAULT_URL"]

DEFAULT_PORT = 7770
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA = "./.lattice"
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

_url_option = click.option("--url", envvar="LATTICE_URL", default=DEFAULT_URL, show_default=True,
                           help="Base URL of a running `lattice serve` (env LATTICE_URL).")


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


async def _post(url: str, body: dict) -> tuple[int, Any]:
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.post(url.rstrip("/") + "/api/v1/invoke", json=body) as r:
            return r.status, await r.json(content_type=None)


def _call(url: str, operation: str, input: dict) -> dict:
    """POST an invoke; exit 2 on a rejection or connection failure; return the job."""
    import aiohttp
    try:
        status, body = asyncio.run(_post(url, {"operation": operation, "input": input}))
    except aiohttp.ClientError as e:
        raise click.ClickException(f"cannot reach {url}: {e} (is `lattice serve` running?)") from None
    if status >= 400:
        err = (body or {}).get("error", {})
        msg = f"{status} {err.get('code', 'error')}: {err.get('message', body)}"
        if err.get("hint"):
            msg += f"\nhint: {err['hint']}"
        click.echo(msg, err=True)
        sys.exit(2)
    return body


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agent-lattice")
def main() -> None:
    """agent-lattice: an event-sourced agent state store on a content-addressed lattice.

    Start a server with `lattice serve`, then drive agents with `lattice invoke`
    (any operation: `lattice ops` lists them) and inspect any path with
    `lattice read g/<agentId>/timeline`.
    """


@main.command()
@click.option("--data", default=DEFAULT_DATA, show_default=True, type=click.Path(file_okay=False),
              help="Directory of the embedded LMDB store (created if missing).")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--memory", is_flag=True, help="Use an in-memory store instead (nothing is kept).")
@click.option("--no-sync", is_flag=True, help="Do not fsync each commit (faster; a crash may lose the last commits).")
@click.option("--max-body", default=1 << 20, show_default=True, type=click.IntRange(1024),
              help="Largest request body, bytes (413 above).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
def serve(data: str, host: str, port: int, memory: bool, no_sync: bool, max_body: int, log_level: str) -> None:
    """Run the HTTP API (POST /api/v1/invoke) on an embedded store."""
    from aiohttp import web

    from lattice.memory import MemoryStore

    from .http import create_app
    from .runtime import Runtime

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if memory:
        store: Any = MemoryStore()
        where = "memory (not kept)"
    else:
        from lattice.errors import StoreError
        from lattice.lmdb import LmdbStore
        try:
            store = LmdbStore(data, durable=not no_sync)
        except StoreError as e:
            raise click.ClickException(f"cannot open store at {data}: {e.message}") from None
        where = os.path.abspath(data)
    app = create_app(Runtime(store), max_body=max_body)
    try:
        web.run_app(app, host=host, port=port, print=lambda *_: click.echo(
            f"lattice serving on http://{host}:{port} (store: {where}); Ctrl-C to stop"))
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    finally:
        store.close()


@main.command()
@click.argument("operation")
@click.argument("input_json", required=False, default="{}", metavar="[JSON]")
@_url_option
def invoke(operation: str, input_json: str, url: str) -> None:
    """Invoke OPERATION (e.g. agent:create) with the JSON input; print the job.

    \b
    Example:
      lattice invoke agent:request '{"agentId": "Alice", "input": "hi", "wait": true}'
    Use - as JSON to read the input from standard input.
    """
    text = sys.stdin.read() if input_json == "-" else input_json
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON: {e}", param_hint="JSON") from None
    job = _call(url, operation, value)
    _dump(job)
    if job.get("status") in ("FAILED", "CANCELLED", "TIMEOUT"):
        sys.exit(1)


@main.command()
@click.argument("path")
@click.option("--max-size", default=1 << 20, show_default=True, type=click.IntRange(0),
              help="Largest value to return, bytes of JSON.")
@_url_option
def read(path: str, max_size: int, url: str) -> None:
    """Print the value at a lattice PATH (g/<agentId>/..., w/..., j/<jobId>)."""
    job = _call(url, "covia:read", {"path": path, "maxSize": max_size})
    if job.get("status") != "COMPLETE":
        click.echo(f"{job.get('error', {}).get('code')}: {job.get('error', {}).get('message')}", err=True)
        sys.exit(1)
    out = job["output"]
    if not out.get("exists"):
        click.echo(f"nothing at {path}", err=True)
        sys.exit(1)
    if out.get("truncated"):
        click.echo(f"value at {path} is {out['size']} bytes, over --max-size {max_size}", err=True)
        sys.exit(1)
    _dump(out["value"])


@main.command("ops")
def list_ops() -> None:
    """List every operation with its summary (no server needed)."""
    from . import operations  # noqa: F401
    from .contracts import REGISTRY
    width = max(len(k) for k in REGISTRY)
    for c in REGISTRY.values():
        click.echo(f"{c.key:<{width}}  {c.summary}")


if __name__ == "__main__":  # pragma: no cover
    main()
