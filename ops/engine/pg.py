"""Change notification across processes that share a PostgreSQL database: LISTEN/NOTIFY.

:class:`PgNotifier` is the engine's notifier (:class:`ops.engine.notify.LocalNotifier`)
for a :class:`lattice.postgres.PostgresStore` shared by several ``lattice serve``
processes. After each commit, the engine announces the refs it moved: local watchers
wake at once, and the names are queued for a ``pg_notify`` on the channel
:data:`CHANNEL` (sent by one task on a connection of its own, batched: whatever
accumulated while the previous one was in flight goes in one statement). Each
process LISTENs on another connection; a notification from another process wakes
that process's watchers of those refs (waits, event streams) and tells its
scheduler (:class:`ops.engine.leases.LeaseScheduler`) which refs moved.

The NOTIFY follows the commit (the store's transaction is the lattice's own): a
process that dies between its commit and its NOTIFY leaves the others' watchers
unwoken. So every ``poll`` seconds (default 2) every watcher is woken anyway (each
re-reads what it guards; a spurious wake-up is harmless), and after the listening
connection is lost and regained. A waiter therefore learns of a commit within
``poll`` seconds in the worst case, at once normally.

The listening connection holds session state (LISTEN): it must be a direct
connection, not one through pgbouncer in transaction pooling mode.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import psycopg

from .leases import LeaseTimes, new_owner, shared_seams
from .notify import LocalNotifier

__all__ = ["CHANNEL", "PgNotifier", "pg_seams"]

log = logging.getLogger("lattice.pg")

#: the NOTIFY channel (per database)
CHANNEL = "lattice_refs"
#: payload bytes per NOTIFY (PostgreSQL's limit is 8000)
PAYLOAD_BYTES = 7000


class _Payload(msgspec.Struct):
    o: str  # the process that committed
    r: list[str]  # the refs it moved


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Payload).decode


def payloads(origin: str, refs: list[str], limit: int = PAYLOAD_BYTES) -> list[str]:
    """The NOTIFY payloads announcing ``refs`` (JSON ``{o, r}``, each under ``limit`` bytes).

    >>> payloads("p1", ["g/a/X", "j/a/0x01"])
    ['{"o":"p1","r":["g/a/X","j/a/0x01"]}']
    """
    out, batch, size = [], [], len(origin) + 20
    for ref in refs:
        n = len(_encode(ref)) + 1
        if batch and size + n > limit:
            out.append(_encode(_Payload(origin, batch)).decode())
            batch, size = [], len(origin) + 20
        batch.append(ref)
        size += n
    if batch:
        out.append(_encode(_Payload(origin, batch)).decode())
    return out


class PgNotifier(LocalNotifier):
    """Watchers of this process, woken by this process's commits and by the other processes'
    (LISTEN/NOTIFY on ``url``'s database; see module doc).

    Args:
        url: the database's libpq URL (the store's).
        origin: this process's id in the payloads (its own notifications are ignored).
        poll: seconds between wake-ups of every watcher (a safety net, see module doc).
        channel: the NOTIFY channel.
    """

    def __init__(self, url: str, *, origin: str | None = None, poll: float = 2.0, channel: str = CHANNEL):
        super().__init__()
        self.url, self.origin, self.poll, self.channel = url, origin or new_owner(), poll, channel
        self._pending: dict[str, None] = {}
        self._kick = asyncio.Event()
        self._listen: psycopg.AsyncConnection | None = None
        self._send: psycopg.AsyncConnection | None = None
        self._tasks: list[asyncio.Task] = []
        self.sent = self.heard = 0  # notifications, for the status and the benches

    def notify(self, ref: str) -> None:
        super().notify(ref)
        if self._tasks:
            self._pending[ref] = None
            self._kick.set()

    async def start(self) -> None:
        """Connect and LISTEN (before the runtime recovers or serves: no commit is missed).

        Raises:
            psycopg.OperationalError: the database cannot be reached.
        """
        self._listen = await self._connect(listen=True)
        self._send = await self._connect()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listener()), loop.create_task(self._publisher()),
                       loop.create_task(self._ticker())]

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        if tasks and self._pending:
            try:
                await asyncio.wait_for(self._flush(), 1.0)
            except (asyncio.TimeoutError, psycopg.Error):
                pass
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in (self._listen, self._send):
            if conn is not None:
                await conn.close()
        self._listen = self._send = None

    async def _connect(self, listen: bool = False) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, prepare_threshold=None,
                                                     application_name="agent-lattice notify")
        if listen:
            await conn.execute(f"LISTEN {self.channel}")
        return conn

    # -- sending ------------------------------------------------------------------------
    async def _flush(self) -> None:
        refs = list(self._pending)
        self._pending.clear()
        if not refs:
            return
        if self._send is None or self._send.closed:
            self._send = await self._connect()
        await self._send.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p",
                                 (self.channel, payloads(self.origin, refs)))
        self.sent += len(refs)

    async def _publisher(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                await self._flush()
            except psycopg.Error as e:  # the others' poll covers what is lost here
                log.warning("NOTIFY failed (%s); reconnecting", e)
                await self._drop("_send")
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("NOTIFY failed; the other processes learn of these commits by their poll")

    # -- hearing ------------------------------------------------------------------------
    def _heard(self, payload: str) -> None:
        try:
            p = _decode(payload)
        except msgspec.DecodeError:
            log.warning("ignoring a malformed notification on %s", self.channel)
            return
        if p.o == self.origin:
            return
        self.heard += len(p.r)
        for ref in p.r:
            LocalNotifier.notify(self, ref)
            for fn in self.remote:
                fn(ref)

    async def _listener(self) -> None:
        while True:
            try:
                if self._listen is None or self._listen.closed:
                    self._listen = await self._connect(listen=True)
                    self._resync()  # notifications sent while it was down are lost
                async for n in self._listen.notifies(timeout=30.0):
                    self._heard(n.payload)
                await self._listen.execute("SELECT 1")  # is the connection still there?
            except psycopg.Error as e:
                log.warning("LISTEN connection lost (%s); reconnecting", e)
                await self._drop("_listen")
                await asyncio.sleep(0.5)

    def _resync(self) -> None:
        self.wake_all()
        for fn in self.remote:
            fn(None)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            self.wake_all()

    async def _drop(self, attr: str) -> None:
        conn = getattr(self, attr)
        setattr(self, attr, None)
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass


def pg_seams(url: str, times: LeaseTimes | None = None, *, poll: float = 2.0) -> dict[str, Any]:
    """The :class:`~ops.engine.runtime.Runtime` options of one of several processes sharing the
    PostgreSQL database at ``url``: :class:`PgNotifier`, leases and quotas counted in the store
    (:func:`ops.engine.leases.shared_seams`)."""
    owner = new_owner()
    return shared_seams(PgNotifier(url, origin=owner, poll=poll), times, owner)
