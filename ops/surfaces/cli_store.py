"""CLI commands that look after a store and move agents: ``lattice gc``, ``lattice compact``,
``lattice export`` and ``lattice import``.

Both open an LMDB data directory directly when no server holds it; ``gc`` asks the
running server instead (``--url``) when one does (a collection is safe beside the
server's operations, see :mod:`lattice.gc`). ``compact`` needs the directory to itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys

import click

__all__ = ["gc", "compact", "export_cmd", "import_cmd", "AGE", "parse_age"]

_AGE = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_age(text: str) -> int:
    """An age as milliseconds: ``500ms``, ``90s``, ``30m``, ``12h``, ``7d`` (a bare number: seconds).

    >>> parse_age("7d"), parse_age("90")
    (604800000, 90000)

    Raises:
        ValueError: not an age.
    """
    m = _AGE.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not an age: a number with ms, s, m, h or d (e.g. 7d)")
    return int(m.group(1)) * _UNIT_MS[m.group(2) or "s"]


class _Age(click.ParamType):
    name = "AGE"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        if isinstance(value, int):
            return value
        try:
            return parse_age(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


AGE = _Age()


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@click.command()
@click.option("--data", default="./.lattice", show_default=True, type=click.Path(file_okay=False),
              help="The LMDB data directory (collected directly when no server is using it).")
@click.option("--url", envvar="LATTICE_URL", default=None,
              help="Ask this running server to collect (default: the one serving --data, at http://127.0.0.1:7770).")
@click.option("--retain-jobs", type=AGE, default=None,
              help="First drop finished jobs older than this age (e.g. 7d, 12h, 30m).")
def gc(data: str, url: str | None, retain_jobs: int | None) -> None:
    """Free every object no ref reaches (removed agents, dropped jobs, replaced values).

    Prints what was freed. Safe beside a running server: it then collects itself, asked
    over its API (with tokens, only callers it names with --admin may ask).
    """
    from lattice.errors import StoreError, StoreLocked
    from lattice.lmdb import LmdbStore

    from ..engine.runtime import Runtime
    from .client import Client, Rejected
    if url is None:
        if not os.path.isdir(data):
            raise click.ClickException(f"no store at {data}")
        try:
            store = LmdbStore(data)
        except StoreLocked:
            url = "http://127.0.0.1:7770"  # a server holds it: ask the server
            click.echo(f"{data} is being served: asking {url}", err=True)
        except StoreError as e:
            raise click.ClickException(f"cannot open store at {data}: {e.message}") from None
        else:
            try:
                async def offline() -> dict:
                    rt = Runtime(store)
                    return await rt.gc(retain_jobs_ms=retain_jobs)
                _report(asyncio.run(offline()))
            finally:
                store.close()
            return

    async def online() -> dict:
        async with Client(url, token=os.environ.get("LATTICE_TOKEN") or None) as client:
            return await client.collect_garbage(retain_jobs)
    import aiohttp
    try:
        _report(asyncio.run(online()))
    except aiohttp.ClientError as e:
        raise click.ClickException(f"cannot reach {url}: {e}") from None
    except Rejected as e:
        click.echo(f"{e.status} {e.code}: {e.message}" + (f"\nhint: {e.hint}" if e.hint else ""), err=True)
        sys.exit(2)


def _report(r: dict) -> None:
    click.echo(f"freed {r['freed']:,} objects ({_human(r['freedBytes'])}); {r['live']:,} live objects under "
               f"{r['refs']:,} refs; {r['jobsRemoved']:,} finished jobs dropped "
               f"(mark {r['markSeconds']} s, sweep {r['sweepSeconds']} s)")


@click.command()
@click.option("--data", default="./.lattice", show_default=True, type=click.Path(file_okay=False, exists=True),
              help="The LMDB data directory (no server may be using it).")
def compact(data: str) -> None:
    """Give the pages LMDB freed back to the file system (LMDB never shrinks a file by itself).

    Writes a compacted copy beside the data file, then replaces the data file with it.
    Run `lattice gc` first. Needs the directory to itself: stop the server.
    """
    from lattice.errors import StoreError, StoreLocked
    from lattice.lmdb import LmdbStore
    try:
        store = LmdbStore(data)
    except StoreLocked as e:
        raise click.ClickException(f"{e.message}: stop the server first (compaction rewrites the file)") from None
    except StoreError as e:
        raise click.ClickException(f"cannot open store at {data}: {e.message}") from None
    try:
        before, after = store.compact()
    finally:
        store.close()
    click.echo(f"{data}: {_human(before)} -> {_human(after)}")


@click.command("export")
@click.argument("agent")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The bundle file to write (- for standard output).")
@click.option("--url", envvar="LATTICE_URL", default="http://127.0.0.1:7770", show_default=True,
              help="Base URL of the running server (env LATTICE_URL; token from env LATTICE_TOKEN).")
def export_cmd(agent: str, output: str, url: str) -> None:
    """Write AGENT's whole history (every version, every object it reaches) to one bundle file."""
    from .client import Client, Rejected

    async def run() -> int:
        n = 0
        async with Client(url, token=os.environ.get("LATTICE_TOKEN") or None) as client:
            out = sys.stdout.buffer if output == "-" else open(output + ".part", "wb")
            try:
                async for chunk in client.export_agent(agent):
                    out.write(chunk)
                    n += len(chunk)
            finally:
                if out is not sys.stdout.buffer:
                    out.close()
        if output != "-":
            os.replace(output + ".part", output)  # no half-written bundle under the final name
        return n
    n = _online(url, run, Rejected)
    click.echo(f"{agent}: {_human(n)} written to {output}", err=True)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--as", "as_id", required=True, help="The new agent's id.")
@click.option("--url", envvar="LATTICE_URL", default="http://127.0.0.1:7770", show_default=True,
              help="Base URL of the running server (env LATTICE_URL; token from env LATTICE_TOKEN).")
def import_cmd(file: str, as_id: str, url: str) -> None:
    """Load a bundle FILE as a new agent (every object re-hashed; a bad file writes nothing)."""
    import json

    from .client import Client, Rejected

    async def run() -> dict:
        async with Client(url, token=os.environ.get("LATTICE_TOKEN") or None) as client:
            with open(file, "rb") as f:
                return await client.import_agent(as_id, f)
    click.echo(json.dumps(_online(url, run, Rejected), indent=2))


def _online(url: str, run, rejected: type) -> object:
    import aiohttp
    try:
        return asyncio.run(run())
    except aiohttp.ClientError as e:
        click.echo(f"cannot reach {url}: {e} (is `lattice serve` running?)", err=True)
        sys.exit(2)
    except rejected as e:
        click.echo(f"{e.status} {e.code}: {e.message}" + (f"\nhint: {e.hint}" if e.hint else ""), err=True)
        sys.exit(2)
