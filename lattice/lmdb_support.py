"""Plumbing of the LMDB backend: the requests queued for the writer thread, the gate that holds
readers back while the writer resizes or aborts, the one-writer-per-directory lock, and error
wrapping."""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

from .errors import StoreError, StoreLocked

__all__ = ["Gate", "Request", "Control", "WRITER_LOCK", "writer_lock", "store_error"]


class Request(NamedTuple):
    """One queued commit: objects and encoded ref updates, ready to write."""

    objects: list[tuple[bytes, bytes, bytes]]  # (digest, bytes, log value)
    updates: list[tuple[bytes, bytes | None, bytes | None]]
    future: concurrent.futures.Future
    generation: int | None = None


class Control(NamedTuple):
    """A queued collection step, run by the writer thread between two commit groups."""

    run: Callable[[], object]
    future: concurrent.futures.Future


class Gate:
    """Many concurrent readers, or one exclusive holder (map resize, close)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True  # new readers wait from here on
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


#: the file a writing process holds an exclusive flock on
WRITER_LOCK = "writer.lock"


def writer_lock(path: str, name: str | None = None) -> int:
    """Take the exclusive writer lock of the store at ``path`` (the file ``name``, by default the
    environment directory's :data:`WRITER_LOCK`); return its descriptor.

    Raises:
        StoreLocked: another process holds it (its pid, when it wrote one, is in the message).
    """
    default = name is None
    name = os.path.join(path, WRITER_LOCK) if default else name
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise store_error(f"cannot open the writer lock {name!r}", e) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        finally:
            os.close(fd)
        raise StoreLocked(f"another process{f' (pid {holder})' if holder else ''} is writing to {path!r}",
                          hint=f"stop it first (one server per {'data directory' if default else 'store'}); "
                               "`lattice fsck` only reads "
                               "and may run beside it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def store_error(message: str, e: BaseException) -> StoreError:
    err = StoreError(f"{message}: {e}")
    err.__cause__ = e
    return err


