"""CLI commands that look after a store and move agents: ``lattice gc``, ``lattice compact``,
``lattice copy``, ``lattice export`` and ``lattice import``.

``gc`` and ``compact`` open an LMDB data directory directly when no server holds it;
``gc`` asks the running server instead (``--url``) when one does (a collection is safe
beside the server's operations, see :mod:`lattice.gc`). ``compact`` needs the directory
to itself. On PostgreSQL (``--store postgresql://...``) both run from here beside the
servers (see :mod:`lattice.postgres_gc`). ``copy`` moves a store from one backend to
another (LMDB <-> PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from typing import Any, Callable

import click

__all__ = ["gc", "compact", "copy", "copy_store", "export_cmd", "import_cmd", "AGE", "parse_age",
           "connections_from_file"]

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
@click.option("--store", "store_spec", default=None, metavar="URL",
              help="A PostgreSQL store instead (postgresql://...): collected from here, beside its servers; or "
                   "sqlite:FILE or an LMDB directory that no server uses.")
@click.option("--url", envvar="LATTICE_URL", default=None,
              help="Ask this running server to collect (default: the one serving --data, at http://127.0.0.1:7770).")
@click.option("--retain-jobs", type=AGE, default=None,
              help="First drop finished jobs older than this age (e.g. 7d, 12h, 30m).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def gc(data: str, store_spec: str | None, url: str | None, retain_jobs: int | None, quiet: bool) -> None:
    """Free every object no ref reaches (removed agents, dropped jobs, replaced values).

    Prints what was freed, with a progress bar while marking. Safe beside running servers: an
    LMDB store in use is collected by its server, asked over its API (with tokens, only callers
    it names with --admin may ask); a PostgreSQL store (--store) is collected from here, while
    its servers run on (one collection at a time per database).
    """
    from lattice.errors import StoreError, StoreLocked
    from lattice.lmdb import LmdbStore

    from .client import Client, Rejected
    if store_spec is not None:
        if url is not None:
            raise click.UsageError("give --store or --url, not both")
        from .cli import _is_url, _open
        store = _open(store_spec, pool_size=2) if _is_url(store_spec) else _open_embedded(store_spec)
        try:
            _report(_collect_here(store, retain_jobs, quiet))
        finally:
            store.close()
        return
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
                _report(_collect_here(store, retain_jobs, quiet))
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


def _open_embedded(path: str, busy: str = "stop the server first, or ask it to collect (--url)") -> Any:
    """Open the embedded store ``path`` names (an LMDB directory, or ``sqlite:FILE``, which must exist) for writing."""
    from lattice.errors import LatticeError, StoreLocked

    from .cli import is_sqlite, local_path, open_local
    if is_sqlite(path) and not os.path.isfile(local_path(path)):
        raise click.ClickException(f"no store at {path}")
    try:
        return open_local(path)
    except StoreLocked as e:
        raise click.ClickException(f"{e.message}: {busy}") from None
    except LatticeError as e:
        raise click.ClickException(f"cannot open store at {path}: {e.message}") from None


def _collect_here(store: Any, retain_jobs: int | None, quiet: bool) -> dict:
    """Collect ``store`` in this process (see :mod:`lattice.gc`), the mark's progress on stderr."""
    import contextlib

    from lattice.errors import LatticeError
    from lattice.gc import collect

    from ..engine.jobs_index import expire_jobs
    from ..engine.links import version_links
    from ..engine.runtime import Runtime
    removed = 0
    if retain_jobs is not None:
        rt = Runtime(store)
        removed = asyncio.run(expire_jobs(rt.engine, rt.clock() - retain_jobs))
    with contextlib.ExitStack() as stack:
        bar: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not bar:
                bar.append(stack.enter_context(click.progressbar(length=total, label="marking refs", file=sys.stderr,
                                                                 hidden=quiet)))
            b = bar[0]
            b.update(done - b.pos)
            if done == total and not quiet:
                click.echo("sweeping ...", err=True)
        try:
            report = collect(store, progress, version_links)
        except LatticeError as e:
            hint = f"\nhint: {e.hint}" if e.hint else ""
            raise click.ClickException(f"{e.message}{hint}") from None
    return {"refs": report.refs, "live": report.live, "freed": report.freed, "freedBytes": report.freed_bytes,
            "jobsRemoved": removed, "markSeconds": round(report.mark_seconds, 3),
            "sweepSeconds": round(report.sweep_seconds, 3)}


def _report(r: dict) -> None:
    click.echo(f"freed {r['freed']:,} objects ({_human(r['freedBytes'])}); {r['live']:,} live objects under "
               f"{r['refs']:,} refs; {r['jobsRemoved']:,} finished jobs dropped "
               f"(mark {r['markSeconds']} s, sweep {r['sweepSeconds']} s)")


@click.command()
@click.option("--data", default="./.lattice", show_default=True, type=click.Path(file_okay=False),
              help="The LMDB data directory (no server may be using it).")
@click.option("--store", "store_spec", default=None, metavar="URL",
              help="A PostgreSQL store instead (postgresql://...): VACUUM its tables; or sqlite:FILE: VACUUM it "
                   "(no server may use it).")
@click.option("--full", is_flag=True,
              help="PostgreSQL: VACUUM FULL, giving every free page back to the file system; it locks the tables "
                   "while it runs (the servers' reads and commits wait). Without it: a plain VACUUM beside them.")
def compact(data: str, store_spec: str | None, full: bool) -> None:
    """Give the space `lattice gc` freed back to the file system.

    LMDB never shrinks a file by itself: this writes a compacted copy beside the data file,
    then replaces the data file with it; it needs the directory to itself (stop the server).
    PostgreSQL (--store) reuses the space of deleted objects once vacuumed (autovacuum does it
    too); this runs VACUUM now (only empty pages at a table's end go back), or VACUUM FULL
    (--full). A SQLite store (--store sqlite:FILE) is rewritten by VACUUM (stop the server).
    Run `lattice gc` first.
    """
    from lattice.errors import LatticeError

    from .cli import _is_url, is_sqlite
    if store_spec is not None and _is_url(store_spec):
        from .cli import _open
        store = _open(store_spec, pool_size=1)
        try:
            before, after = store.compact(full=full)
        except LatticeError as e:
            raise click.ClickException(e.message) from None
        finally:
            store.close()
        click.echo(f"{store.url}: {_human(before)} -> {_human(after)} ({'VACUUM FULL' if full else 'VACUUM'})")
        return
    path = data if store_spec is None else store_spec
    if full:
        raise click.UsageError("--full is for a PostgreSQL store (LMDB and SQLite compaction always rewrite the file)")
    if not is_sqlite(path) and not os.path.isdir(path):
        raise click.UsageError(f"Directory {path!r} does not exist (no store there).")
    store = _open_embedded(path, busy="stop the server first (compaction rewrites the file)")
    try:
        before, after = store.compact()
    finally:
        store.close()
    click.echo(f"{path}: {_human(before)} -> {_human(after)}")


@click.command("export")
@click.argument("agent")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The bundle file to write (- for standard output).")
@click.option("--from", "from_seq", type=click.IntRange(min=0), default=None, metavar="SEQ",
              help="Only the versions from SEQ on (version SEQ becomes the imported agent's base).")
@click.option("--url", envvar="LATTICE_URL", default="http://127.0.0.1:7770", show_default=True,
              help="Base URL of the running server (env LATTICE_URL; token from env LATTICE_TOKEN).")
def export_cmd(agent: str, output: str, from_seq: int | None, url: str) -> None:
    """Write AGENT's history (every version, or those from --from SEQ on, and every object they reach)
    to one bundle file."""
    from .client import Client, Rejected

    async def run() -> int:
        n = 0
        async with Client(url, token=os.environ.get("LATTICE_TOKEN") or None) as client:
            out = sys.stdout.buffer if output == "-" else open(output + ".part", "wb")
            try:
                async for chunk in client.export_agent(agent, from_seq):
                    out.write(chunk)
                    n += len(chunk)
            except BaseException:
                if out is not sys.stdout.buffer:
                    out.close()
                    os.unlink(output + ".part")  # nothing half-written left behind
                raise
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
#: refs of the processes serving a store (leases, heartbeats, agent counts: see
#: ops.engine.leases), not copied: the servers of the target rebuild them
PROCESS_REFS = ("l/", "p/", "q/")
#: bytes of objects per commit while copying
COPY_BATCH_BYTES = 4 << 20


def copy_store(src: Any, dst: Any, *, verify: bool = True,
               progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Copy every object reachable from ``src``'s refs into ``dst``, then the refs, in one commit.

    The refs are listed once (one consistent read), so a copy made beside a running
    server holds the store as it was then. Every object is re-hashed when read from
    ``src`` and checked against its digest when written to ``dst``; with ``verify``,
    read back from ``dst`` (re-hashed again) once the refs are in. Objects go first,
    refs last: an interrupted copy leaves no ref. Leases, heartbeats and agent counts
    (:data:`PROCESS_REFS`) are not copied.

    Args:
        src: the store to copy. dst: an empty store (no ref).
        verify: read every object back from ``dst``.
        progress: called as ``progress(objects copied, bytes copied)`` after each batch.

    Returns:
        ``{refs, objects, bytes}`` copied.

    Raises:
        click.ClickException: ``dst`` has refs, or an object of ``src`` is missing or corrupt.
    """
    from lattice.errors import CorruptObject, NotFound
    from lattice.gc import children
    from lattice.store import RefUpdate

    from ..engine.runtime import version_links
    if next(iter(dst.refs("")), None) is not None:
        raise click.ClickException("the target store is not empty (it has refs): copy into an empty one")
    refs = [(n, d) for n, d in src.refs("") if not n.startswith(PROCESS_REFS)]

    def get(d: bytes) -> bytes | None:
        try:
            return src.get(d)
        except NotFound:
            return None

    seen: set[bytes] = set()
    order: list[bytes] = []
    batch: dict[bytes, bytes] = {}
    size = total = 0
    stack = [d for _, d in refs]
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        try:
            data = src.get(d)
        except (NotFound, CorruptObject) as e:
            raise click.ClickException(f"source object {d.hex()}: {e.message} (run `lattice fsck` on it)") from None
        batch[d] = data
        order.append(d)
        size += len(data)
        total += len(data)
        stack.extend(c for c in children(data, version_links, get) if c not in seen)
        if size >= COPY_BATCH_BYTES:
            dst.commit(batch, [])
            batch, size = {}, 0
            if progress is not None:
                progress(len(order), total)
    if not dst.commit(batch, [RefUpdate(n, None, d) for n, d in refs]):
        raise click.ClickException("the target store gained refs during the copy: nothing was referenced")
    if progress is not None:
        progress(len(order), total)
    if verify:
        for d in order:
            dst.get(d)  # re-hashes
        moved = [(n, d) for n, d in dst.refs("") if not n.startswith(PROCESS_REFS)]
        if moved != sorted(refs):
            raise click.ClickException("the target's refs differ from the source's after the copy")
    return {"refs": len(refs), "objects": len(order), "bytes": total}


@click.command("copy")
@click.option("--from", "source", required=True, metavar="SPEC",
              help="The store to copy: an LMDB directory or postgresql://... (may be in use by a server).")
@click.option("--to", "target", required=True, metavar="SPEC",
              help="An empty store: an LMDB directory (created) or postgresql://... (tables created).")
@click.option("--no-verify", is_flag=True, help="Do not read every object back from the target.")
def copy(source: str, target: str, no_verify: bool) -> None:
    """Copy a store to another backend: every object reachable from its refs, then the refs,
    each object verified by its digest (e.g. --from ./.lattice --to postgresql://... and back).

    The refs are those of one moment; a server may run on the source meanwhile (its later
    commits are not copied). The target must be empty; no server may use it yet.
    """
    from lattice.errors import LatticeError, StoreError
    from lattice.open import open_store

    from .cli import _is_url, is_sqlite, local_path, open_local

    def opened(spec: str, readonly: bool) -> Any:
        try:
            if readonly and not _is_url(spec) and spec != ":memory:":
                if not os.path.exists(local_path(spec)) or (not is_sqlite(spec) and not os.path.isdir(spec)):
                    raise click.ClickException(f"no store at {spec}")
                return open_local(spec, readonly=True)
            return open_store(spec)
        except (LatticeError, StoreError) as e:
            hint = f" (hint: {e.hint})" if getattr(e, "hint", None) else ""
            raise click.ClickException(f"cannot open {spec.split('@')[-1]}: {e.message}{hint}") from None
    src = opened(source, True)
    try:
        dst = opened(target, False)
        try:
            r = copy_store(src, dst, verify=not no_verify,
                           progress=lambda n, b: click.echo(f"  {n:,} objects, {_human(b)}", err=True))
        finally:
            dst.close()
    finally:
        src.close()
    click.echo(f"copied {r['refs']:,} refs, {r['objects']:,} objects ({_human(r['bytes'])})"
               + ("" if no_verify else "; every object read back and verified"))


def connections_from_file(path: str | None, strict: bool) -> Any:
    """The model connections of ``--models FILE`` (none without it)."""
    import msgspec

    from ..domain.models import Connections
    if path is None:
        return Connections(strict=strict)
    try:
        data = json.loads(open(path, encoding="utf-8").read())
        return Connections.parse(data, strict)
    except OSError as e:
        raise click.ClickException(f"cannot read --models {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise click.ClickException(f"--models {path} is not JSON: {e}") from None
    except msgspec.ValidationError as e:
        raise click.ClickException(f"--models {path}: {e} (expected {{name: {{baseUrl, apiKeyEnv?}}}})") from None
