"""The ``lattice`` command line: run the server, invoke operations, read paths.

Every command but ``serve``, ``fsck``, ``ops`` and ``schema`` talks to a running
server (``--url``, default ``$LATTICE_URL`` or ``http://127.0.0.1:7770``) through
:class:`ops.surfaces.client.Client`, with the bearer token in ``$LATTICE_TOKEN``
if it is set.

Exit codes: 0 success; 1 the operation's job FAILED/CANCELLED/TIMEOUT or the
path does not exist; 2 the request was rejected (bad input) or the server
could not be reached.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import click

from ..engine.runtime import Limits
from .app import DEFAULT_MAX_BODY
from .cli_common import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_URL, call, dump, url_option
from .cli_store import AGE, connections_from_file

__all__ = ["main", "DEFAULT_PORT", "DEFAULT_URL"]

DEFAULT_DATA = "./.lattice"
#: seconds a stopping server (SIGTERM, SIGINT) gives requests still waiting before it cancels them; event
#: streams end at once
SHUTDOWN_TIMEOUT = 1.0

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
@click.option("--store", "store_spec", default=None, metavar="URL",
              help="The store instead of --data: postgresql://user:password@host:port/db (any number of "
                   "`lattice serve` processes may share one database), sqlite:FILE (one SQLite file, created if "
                   "missing), an LMDB directory, or :memory:.")
@click.option("--lease", default=5.0, show_default=True, type=click.FloatRange(min=0.5), metavar="SECONDS",
              help="With a PostgreSQL store: a process silent this long is taken for dead, and its agents run "
                   "elsewhere within SECONDS + 40%.")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--memory", is_flag=True, help="Use an in-memory store instead (nothing is kept).")
@click.option("--no-sync", is_flag=True, help="Do not fsync each commit (faster; a crash may lose the last commits).")
@click.option("--max-body", default=DEFAULT_MAX_BODY, show_default=True, type=click.IntRange(1024),
              help="Largest request body, bytes (413 above).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
@click.option("--max-agents", default=Limits().max_agents, show_default=True, type=click.IntRange(1),
              help="Agent records a caller may hold (limit_exceeded above).")
@click.option("--max-queued", default=Limits().max_queued, show_default=True, type=click.IntRange(1),
              help="Tasks + messages + triggers an agent may have waiting (limit_exceeded above).")
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file mapping bearer tokens to caller ids; every request then needs "
                   "'Authorization: Bearer <token>' and each caller sees only its own agents, jobs and workspace.")
@click.option("--allow-origin", "origins", multiple=True, metavar="ORIGIN",
              help="A browser origin (https://host:port) allowed to call the server, besides loopback ones. Repeatable.")
@click.option("--allow-host", "hosts", multiple=True, metavar="NAME",
              help="Without --tokens, a Host name (a port is ignored) answered besides localhost, 127.0.0.1, [::1] "
                   "and the --host address; any other Host gets 403 (DNS rebinding protection). '*' answers any. "
                   "Repeatable. With --tokens every Host is answered: the token is the protection.")
@click.option("--insecure-remote", is_flag=True,
              help="Allow a non-loopback --host without --tokens: anyone who reaches it acts as the local caller.")
@click.option("--models", "models_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file declaring model connections: {name: {baseUrl, apiKeyEnv?}}. Agents name one with "
                   "config.model.connection. With --tokens, model requests go only to declared connections "
                   "(each key only to its own endpoint).")
@click.option("--gc-every", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Collect garbage every SECONDS beside the operations (default: only on `lattice gc`).")
@click.option("--retain-jobs", type=AGE, default=None,
              help="With --gc-every: first drop finished jobs older than this age (e.g. 7d).")
@click.option("--admin", "admins", multiple=True, metavar="CALLER",
              help="A caller (a --tokens caller id, or a did:key with --accept-did-auth) allowed on the operator "
                   "routes (`lattice gc`). Repeatable.")
@click.option("--accept-did-auth", is_flag=True, envvar="LATTICE_ACCEPT_DID_AUTH",
              help="Also accept self-issued did:key JWTs (the Covia SDK's Ed25519Auth: alg EdDSA, sub = the "
                   "caller's did:key, exp required, aud = this server's DID if given); such a caller is its DID "
                   "and sees only its own agents, jobs and workspace. Env LATTICE_ACCEPT_DID_AUTH=1.")
@click.option("--venue-key", type=click.Path(dir_okay=False), default=None, envvar="LATTICE_VENUE_KEY",
              help="The venue's Ed25519 key (PEM, as `openssl genpkey -algorithm ed25519` writes; created 0600 if "
                   "missing), whose did:key is the server's DID (status `did`, /.well-known/did.json). Default: "
                   "venue.key in the LMDB directory (FILE-venue.key beside a SQLite FILE), a row of the PostgreSQL "
                   "database, a new key per process for "
                   "--memory. Env LATTICE_VENUE_KEY.")
def serve(data: str, store_spec: str | None, lease: float, host: str, port: int, memory: bool, no_sync: bool,
          max_body: int, log_level: str, max_agents: int, max_queued: int, tokens_file: str | None,
          origins: tuple[str, ...], hosts: tuple[str, ...], insecure_remote: bool, models_file: str | None,
          gc_every: float | None, retain_jobs: int | None, admins: tuple[str, ...], accept_did_auth: bool,
          venue_key: str | None) -> None:
    """Run the HTTP API (POST /api/v1/invoke, MCP at /mcp, the inspector at /ui) on an embedded store,
    or on a PostgreSQL database shared with other `lattice serve` processes (--store postgresql://...).

    SIGTERM or Ctrl-C stops it at once: open event streams end, requests waiting on a job answer 503
    (the job's task runs again after a restart), and the process exits within about a second.
    """
    if store_spec is not None and memory:
        raise click.UsageError("give --store or --memory, not both")
    import ipaddress

    from .auth import TokenFileError, Tokens
    tokens = None
    if tokens_file is not None:
        try:
            tokens = Tokens.load(tokens_file)
        except TokenFileError as e:
            raise click.ClickException(str(e)) from None
    connections = connections_from_file(models_file, strict=tokens is not None)
    try:
        address = None if host == "localhost" else ipaddress.ip_address(host)
    except ValueError:
        address = None
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if not loopback and tokens is None and not insecure_remote:
        raise click.UsageError(f"--host {host} is not a loopback address: give --tokens FILE so that callers "
                               "authenticate, or --insecure-remote to serve it without authentication")
    from aiohttp import web

    from lattice.memory import MemoryStore

    from ..engine.runtime import Runtime
    from .app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lattice.errors import LatticeError, StoreError
    seams: dict[str, Any] = {}
    key_file = None  # where the store's venue key is kept, for an embedded store
    if memory:
        store: Any = MemoryStore()
        where = "memory (not kept)"
    elif store_spec is not None and _is_url(store_spec):
        from ..engine.cached import CachedStore
        from ..engine.leases import LeaseTimes
        from ..engine.pg import pg_seams
        store = CachedStore(_open(store_spec))
        seams = pg_seams(store_spec, LeaseTimes.scaled(lease))
        where = f"{store.url}, shared"
    else:
        spec = data if store_spec is None else store_spec
        try:
            store = MemoryStore() if spec == ":memory:" else open_local(spec, durable=not no_sync)
        except LatticeError as e:
            hint = f"\nhint: {e.hint}" if e.hint else ""
            raise click.ClickException(f"cannot open store at {spec}: {e.message}{hint}") from None
        where = "memory (not kept)" if spec == ":memory:" else os.path.abspath(local_path(spec))
        key_file = None if spec == ":memory:" else local_key_file(spec)
    try:
        identity = _identity(venue_key, store_spec if seams else None, key_file)
    except click.ClickException:
        store.close()
        raise
    app = create_app(Runtime(store, limits=Limits(max_agents=max_agents, max_queued=max_queued),
                             connections=connections, gc_every=gc_every, retain_jobs_ms=retain_jobs,
                             identity=identity, **seams),
                     max_body=max_body, tokens=tokens, allowed_origins=frozenset(origins), admins=frozenset(admins),
                     accept_did_auth=accept_did_auth,
                     # the bound name answers too, unless it is a wildcard (0.0.0.0, ::): then --allow-host names them
                     allowed_hosts=frozenset(hosts) | ({host} if address is None or not address.is_unspecified
                                                      else set()))
    try:
        # handler_cancellation: a client that disconnects stops its request's wait (commits are shielded);
        # at SIGTERM/SIGINT the streams end and the waits answer 503 at once, SHUTDOWN_TIMEOUT bounds the rest
        web.run_app(app, host=host, port=port, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT,
                    print=lambda *_: click.echo(
            f"lattice serving on http://{host}:{port} (inspector: /ui; store: {where}; "
            f"{f'{len(tokens)} bearer token(s)' if tokens else 'no authentication, one local caller'}"
            f"{'; did:key tokens accepted' if accept_did_auth else ''}; DID {identity.did}); Ctrl-C to stop"))
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    except StoreError as e:  # e.g. another process of another engine protocol shares the database
        hint = f"\nhint: {e.hint}" if e.hint else ""
        raise click.ClickException(f"{e.message}{hint}") from None
    finally:
        store.close()


def _identity(key_file: str | None, pg_url: str | None, store_key_file: str | None) -> Any:
    """The venue identity (:mod:`ops.engine.identity`): the operator's key file, else the store's key
    (PostgreSQL row, the embedded store's key file), else a new one (an in-memory store)."""
    from ..engine import identity as I
    try:
        if key_file is not None:
            return I.load_key_file(key_file)
        if pg_url is not None:
            return I.postgres_identity(pg_url)
        if store_key_file is not None:
            return I.load_key_file(store_key_file)
        return I.VenueIdentity.generate()
    except I.IdentityError as e:
        raise click.ClickException(str(e)) from None


def _is_url(spec: str) -> bool:
    """Whether ``spec`` names a shared (PostgreSQL) store: a URL, but not ``sqlite:``."""
    return "://" in spec and not is_sqlite(spec)


def is_sqlite(spec: str) -> bool:
    """Whether ``spec`` names a SQLite store (``sqlite:FILE``)."""
    return spec[:7].lower() == "sqlite:"


def local_path(spec: str) -> str:
    """The file (SQLite) or directory (LMDB) of an embedded store's spec."""
    if is_sqlite(spec):
        from lattice.sqlite import sqlite_path
        return sqlite_path(spec)
    return spec


def local_key_file(spec: str) -> str:
    """Where the venue key of an embedded store is kept: ``venue.key`` in an LMDB directory,
    ``FILE-venue.key`` beside a SQLite file."""
    from ..engine.identity import KEY_FILE
    path = local_path(spec)
    return f"{path}-{KEY_FILE}" if is_sqlite(spec) else os.path.join(path, KEY_FILE)


def open_local(spec: str, *, readonly: bool = False, durable: bool = True) -> Any:
    """Open an embedded store: ``sqlite:FILE`` a :class:`~lattice.sqlite.SqliteStore`, else the
    :class:`~lattice.lmdb.LmdbStore` in directory ``spec`` (created if missing unless ``readonly``).

    Raises:
        StoreLocked: another process writes to it. StoreError: it cannot be opened (``readonly``:
            it does not exist). InvalidValue: ``sqlite:`` without a file.
    """
    from lattice.errors import StoreError
    from lattice.open import open_store
    if readonly and not is_sqlite(spec) and not os.path.isdir(spec):
        raise StoreError(f"no store at {spec!r} (no such directory)")
    return open_store(spec, readonly=True) if readonly else open_store(spec, durable=durable)


def _open(spec: str, **options: Any) -> Any:
    """Open the store ``spec`` names (:func:`lattice.open.open_store`); a clear error if it cannot."""
    from lattice.errors import LatticeError
    from lattice.open import open_store
    try:
        return open_store(spec, **options)
    except LatticeError as e:
        hint = f"\nhint: {e.hint}" if getattr(e, "hint", None) else ""
        where = getattr(e, "url", None) or (spec.split("@")[-1] if _is_url(spec) else spec)
        raise click.ClickException(f"cannot open store {where}: {e.message}{hint}") from None


@main.command()
@click.argument("operation")
@click.argument("input_json", required=False, default="{}", metavar="[JSON]")
@url_option
def invoke(operation: str, input_json: str, url: str) -> None:
    """Invoke OPERATION (e.g. agent:create) with the JSON input; print the job.

    \b
    Example:
      lattice invoke agent:request '{"agentId": "Alice", "input": "hi", "wait": true}'
      lattice invoke agent:request '{"agentId": "Alice", "input": "hi", "wait": 5000}'
    `wait`: true waits until the job is done, a number waits at most that many
    milliseconds (then the job is printed as it is: `lattice job ID` follows it).
    Use - as JSON to read the input from standard input.
    """
    text = sys.stdin.read() if input_json == "-" else input_json
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON: {e}", param_hint="JSON") from None
    job = call(url, operation, value)
    dump(job)
    if job.get("status") in ("FAILED", "CANCELLED", "TIMEOUT"):
        sys.exit(1)


@main.command()
@click.option("--data", default=DEFAULT_DATA, show_default=True, type=click.Path(file_okay=False),
              help="Directory of the LMDB store to check.")
@click.option("--store", "store_spec", default=None, metavar="URL",
              help="The store instead of --data: postgresql://..., sqlite:FILE or an LMDB directory.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fsck(data: str, store_spec: str | None, quiet: bool) -> None:
    """Check a store: every object reachable from every ref is present and re-hashes to its digest,
    every commit chain is whole, every agent and job record is consistent.

    Exit 0 when clean, 1 when anything is wrong (each problem is printed). The
    servers may keep running: LMDB readers in another process see a consistent snapshot;
    on PostgreSQL an agent that moves while it is checked is checked as it was listed.
    """
    from lattice.errors import LatticeError
    from lattice.fsck import fsck as run_fsck

    from ..domain.check import make_check_head
    spec = data if store_spec is None else store_spec
    if _is_url(spec):
        store = _open(spec, pool_size=2)
    else:
        if not is_sqlite(spec) and not os.path.isdir(spec):
            raise click.UsageError(f"Directory {spec!r} does not exist (no store there).")
        try:
            store = open_local(spec, readonly=True)  # reads only: may run beside a server
        except LatticeError as e:
            raise click.ClickException(f"cannot open store at {spec}: {e.message}") from None
    try:
        total = sum(1 for _ in store.refs(""))
        with click.progressbar(length=total, label="checking refs", file=sys.stderr,
                               hidden=quiet or total == 0) as bar:
            last = [0]

            def progress(done: int, _total: int) -> None:
                bar.update(done - last[0])
                last[0] = done
            report = run_fsck(store, check_head=make_check_head(store), progress=progress)
    finally:
        store.close()
    for p in report.problems:
        click.echo(f"{p.kind}: {p.ref}: {p.message}")
    click.echo(f"{report.refs} refs, {report.commits} commits, {report.objects} objects checked; "
               f"{len(report.problems)} problem(s)", err=True)
    sys.exit(0 if report.ok else 1)


from . import cli_jobs, cli_store, cli_versions  # noqa: E402  (commands of their own modules)

for _command in (cli_versions.read, cli_versions.log, cli_versions.diff, cli_versions.replay, cli_jobs.job,
                 cli_jobs.cancel, cli_store.gc, cli_store.compact, cli_store.copy, cli_store.export_cmd,
                 cli_store.import_cmd):
    main.add_command(_command)


@main.command("ops")
def list_ops() -> None:
    """List every operation with its summary (no server needed)."""
    from ..domain import operations  # noqa: F401
    from ..domain.contracts import REGISTRY
    width = max(len(k) for k in REGISTRY)
    for c in REGISTRY.values():
        click.echo(f"{c.key:<{width}}  {c.summary}")


@main.command("schema")
@click.argument("operation")
@click.option("--response", is_flag=True,
              help="The reply instead: the job, whose `output` is the operation's output.")
def schema(operation: str, response: bool) -> None:
    """Print the JSON Schema of OPERATION's input (or, --response, of its reply); no server needed.

    \b
    Example:
      lattice schema agent:request
      lattice schema covia:read --response
    """
    from ..domain import operations  # noqa: F401
    from ..domain.contracts import lookup
    from ..domain.errors import Rejected
    from .openapi import input_json_schema, job_json_schema
    try:
        contract = lookup(operation)
    except Rejected as e:
        click.echo(f"{e.code}: {e.message}\nhint: {e.hint}", err=True)
        sys.exit(2)
    dump(job_json_schema(contract) if response else input_json_schema(contract))


if __name__ == "__main__":  # pragma: no cover
    main()
