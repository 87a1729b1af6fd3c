"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary directory.

Any test folder can use it::

    from tests.pg import create_database, start_postgres

    url, stop = start_postgres(tmp_dir)       # a running server, superuser ``postgres``, no password
    try:
        db = create_database(url)            # a fresh, empty database: its URL
        ...                                  # PostgresStore(db), or `lattice serve --store db` processes
    finally:
        stop()

or, from a ``conftest.py``, the pytest fixtures defined here::

    from tests.pg import postgres_server, postgres_url  # noqa: F401 (pytest fixtures)

``postgres_server`` (session scope) is the server's URL; ``postgres_url`` (function scope)
is the URL of a fresh database for one test. A missing PostgreSQL installation makes
the fixtures FAIL with the reason (CI must run these tests); set
``LATTICE_SKIP_POSTGRES=1`` outside CI to skip them instead.

The server listens on 127.0.0.1 (a free port) and on a unix socket in its own
directory, trusts every local connection, and runs with ``fsync=off``: fast, and
gone with its directory. PostgreSQL refuses to run as root, so when the tests run
as root the cluster belongs to ``nobody`` (started through ``runuser`` or ``setpriv``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.serve import free_port

__all__ = ["PostgresMissing", "create_database", "drop_database", "find_bin", "postgres_server",
           "postgres_url", "start_postgres"]

#: the user that owns and runs the cluster when the tests run as root
UNPRIVILEGED_USER = "nobody"


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries (``initdb``, ``pg_ctl``) on this machine."""


def find_bin() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``.

    Looks on ``PATH`` first, then in Debian's ``/usr/lib/postgresql/<major>/bin``
    (the newest major version).

    Raises:
        PostgresMissing: neither place has them; the message says how to install them.
    """
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl", path=str(Path(found).parent)):
        return Path(found).resolve().parent
    dirs = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    dirs.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if dirs and (dirs[-1] / "pg_ctl").exists():
        return dirs[-1]
    raise PostgresMissing(
        "PostgreSQL server binaries not found (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
        "install them (Debian: apt-get install -y postgresql) or run .ci/run, which does"
    )


def _as_user(user: str | None) -> list[str]:
    """The command prefix that runs a program as ``user`` (none when ``user`` is None)."""
    if user is None:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--"]
    if shutil.which("setpriv"):
        pw = pwd.getpwnam(user)
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    raise PostgresMissing(f"running as root, but neither runuser nor setpriv is here to start PostgreSQL as {user}")


def _reachable(user: str, path: Path) -> bool:
    return subprocess.run([*_as_user(user), "test", "-w", str(path)], capture_output=True).returncode == 0


def start_postgres(tmpdir: str | os.PathLike | None = None, *, max_connections: int = 200,
                   timeout: float = 60, durable: bool = False) -> tuple[str, Callable[[], None]]:
    """Create and start a PostgreSQL cluster; return its URL and a function that stops it.

    Args:
        tmpdir: where to put the cluster's directory (a new ``lattice-pg-*`` folder inside
            it); default the system's temporary directory. When running as root and the
            unprivileged user cannot write there (e.g. pytest's 0700 ``tmp_path``), the
            system's temporary directory is used instead.
        max_connections: the server's ``max_connections`` (default 200: several test
            processes, each with a pool).
        timeout: seconds to wait for the server to accept connections.
        durable: keep PostgreSQL's defaults (``fsync``, ``synchronous_commit`` and
            ``full_page_writes`` on: a commit waits for its WAL flush), for the benches;
            by default they are off (fast tests).

    Returns:
        ``(url, stop)``: ``url`` is ``postgresql://postgres@127.0.0.1:<port>/postgres``
        (superuser, no password, database ``postgres``); ``stop()`` shuts the server
        down at once and deletes its directory (idempotent).

    Raises:
        PostgresMissing: no PostgreSQL binaries here.
        RuntimeError: ``initdb`` or ``pg_ctl start`` failed (the message has its log).
    """
    bindir = find_bin()
    user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
    prefix = _as_user(user)
    base = Path(tempfile.mkdtemp(prefix="lattice-pg-", dir=tmpdir))
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        if not _reachable(user, base):
            shutil.rmtree(base)
            base = Path(tempfile.mkdtemp(prefix="lattice-pg-"))
            os.chown(base, pw.pw_uid, pw.pw_gid)
    data, log = base / "data", base / "server.log"
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)

    try:
        init = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=timeout,
        )
        if init.returncode:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        for _attempt in range(3):  # a free port may be taken before the server binds it
            port = free_port()
            opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c max_connections={max_connections}"
            if not durable:
                opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            started = subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                 "-t", str(int(timeout)), "-o", opts],
                capture_output=True, text=True, timeout=timeout + 10,
            )
            if started.returncode == 0:
                return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed ({started.returncode}):\n{started.stderr}\n{server_log}")
    except BaseException:
        stop()
        raise


def _with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


def create_database(url: str, name: str | None = None) -> str:
    """Create an empty database on the server at ``url``; return its URL.

    Args:
        url: a superuser URL of the server (from :func:`start_postgres`).
        name: the database name; default a new unique ``t_<hex>``.
    """
    import psycopg

    name = name or f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(url, name)


def drop_database(url: str) -> None:
    """Drop the database ``url`` names (closing its other connections first); no error if it is gone."""
    import psycopg

    head, _, name = url.rpartition("/")
    with psycopg.connect(f"{head}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server started for this test session (superuser ``postgres``).

    Fails the test (does not skip) when PostgreSQL is not installed, unless
    ``LATTICE_SKIP_POSTGRES=1`` is set outside CI.
    """
    try:
        url, stop = start_postgres()
    except PostgresMissing as e:
        if os.environ.get("LATTICE_SKIP_POSTGRES") == "1" and not os.environ.get("CI"):
            pytest.skip(f"LATTICE_SKIP_POSTGRES=1: {e}")
        pytest.fail(str(e), pytrace=False)
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of a fresh, empty database on :func:`postgres_server`, dropped after the test."""
    url = create_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(url)
