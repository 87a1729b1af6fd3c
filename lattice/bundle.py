"""Bundles: a ref's whole history as one streaming, content-addressed file.

A bundle carries a head commit and every object reachable from it (every version
of the chain, every state tree, every recorded input), so it can be loaded into
another store and re-hashed there, object by object. The format, version 1::

    b"LATTICE-BUNDLE/1\\n"
    frame*            kind (1 byte) | length (4 bytes, big-endian) | payload
      'H'             the header: a canonical msgpack map (``format``, ``head`` as a
                      digest, and what the writer adds: the agent's id, counts, time)
      'O' *           an object: its 32-byte digest, then its bytes
      'E'             the end: the 32-byte blake3 digest of every byte before this
                      frame, then the number of objects (8 bytes, big-endian)

The header comes first, the end last; objects come in any order, each once.
:func:`read_bundle` checks everything before the caller writes anything: the magic
line, each frame's length (a cut file is ``truncated``), each object's digest (a
changed object is ``corrupt_object``), the end digest over the whole stream (any
other change is ``tampered``), and that every object the head reaches is present
(else ``incomplete``, naming the first missing digest).
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, Iterator, Mapping

import blake3

from .codec import decode, encode
from .digest import DIGEST_SIZE, digest
from .errors import LatticeError
from .gc import Extra, children

__all__ = ["MAGIC", "BUNDLE_FORMAT", "BundleError", "write_bundle", "BundleReader", "read_bundle"]

MAGIC = b"LATTICE-BUNDLE/1\n"
BUNDLE_FORMAT = 1
#: largest frame accepted (an object is at most a few MiB in practice)
MAX_FRAME = 64 << 20
#: objects read per call of a writer's ``get_many``
READ_CHUNK = 1000
_FRAME = struct.Struct(">cI")


class BundleError(LatticeError):
    """A bundle that cannot be loaded; ``code`` says why: ``bad_format``, ``truncated``,
    ``corrupt_object``, ``tampered`` or ``incomplete``."""

    code = "bad_bundle"

    def __init__(self, code: str, message: str, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.code = code


def write_bundle(get: Callable[[bytes], bytes], head: bytes, header: dict[str, Any],
                 extra: Extra | None = None,
                 get_many: Callable[[list[bytes]], Mapping[bytes, bytes]] | None = None) -> Iterator[bytes]:
    """Yield the bytes of a bundle of ``head`` and everything it reaches, in pieces.

    Args:
        get: reads an object's bytes by digest (raises when absent).
        head: the commit digest the bundle is of.
        header: fields added to the header (``format`` and ``head`` are set here).
        extra: other versions a commit's event needs (see :func:`lattice.gc.children`).
        get_many: reads many objects at once (``{digest: bytes}`` of those present and whole),
            for a store whose reads cross a network: the objects are then read a layer of the
            graph at a time, :data:`READ_CHUNK` per call (an object it leaves out is read with
            ``get``, which raises as it would have).
    """
    h = blake3.blake3()

    def out(kind: bytes, payload: bytes) -> bytes:
        frame = _FRAME.pack(kind, len(payload)) + payload
        h.update(frame)
        return frame
    h.update(MAGIC)
    yield MAGIC
    yield out(b"H", encode({**header, "format": BUNDLE_FORMAT, "head": head}))
    seen: set[bytes] = set()
    stack = [head]
    n = 0

    def get_or_none(d: bytes) -> bytes | None:
        try:
            return get(d)
        except LatticeError:
            return None
    if get_many is None:
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            data = get(d)
            n += 1
            yield out(b"O", d + data)
            stack.extend(c for c in children(data, extra, get_or_none) if c not in seen)
    else:
        frontier, seen = [head], {head}
        while frontier:
            nxt: list[bytes] = []
            for i in range(0, len(frontier), READ_CHUNK):
                part = frontier[i:i + READ_CHUNK]
                found = get_many(part)
                for d in part:
                    data = found.get(d)
                    data = get(d) if data is None else data
                    n += 1
                    yield out(b"O", d + data)
                    for c in children(data, extra, get_or_none):
                        if c not in seen:
                            seen.add(c)
                            nxt.append(c)
            frontier = nxt
    end = h.digest() + n.to_bytes(8, "big")
    yield _FRAME.pack(b"E", len(end)) + end


class BundleReader:
    """Reads a bundle fed in pieces (:meth:`feed`), checking as it goes; :meth:`finish` checks the end.

    Attributes:
        header: the decoded header (after the first frame). objects: ``{digest: bytes}``.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.header: dict[str, Any] | None = None
        self.objects: dict[bytes, bytes] = {}
        self._buf = bytearray()
        self._hash = blake3.blake3()
        self._magic = False
        self._ended = False
        self._size = 0
        self._max = max_bytes

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the stream.

        Raises:
            BundleError: ``bad_format`` (not a bundle, an unknown frame, data after the end,
                over ``max_bytes``), ``corrupt_object``, ``tampered``.
        """
        self._size += len(chunk)
        if self._max is not None and self._size > self._max:
            raise BundleError("bad_format", f"bundle over the limit of {self._max} bytes")
        self._buf += chunk
        if not self._magic:
            if len(self._buf) < len(MAGIC):
                if not MAGIC.startswith(bytes(self._buf)):
                    raise BundleError("bad_format", "not a lattice bundle (no LATTICE-BUNDLE/1 line)")
                return
            if bytes(self._buf[:len(MAGIC)]) != MAGIC:
                raise BundleError("bad_format", "not a lattice bundle (no LATTICE-BUNDLE/1 line)",
                                  hint="export one with `lattice export AGENT -o FILE`")
            self._hash.update(MAGIC)
            del self._buf[:len(MAGIC)]
            self._magic = True
        while len(self._buf) >= _FRAME.size:
            if self._ended:
                raise BundleError("bad_format", "data after the end of the bundle")
            kind, size = _FRAME.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise BundleError("bad_format", f"a frame of {size} bytes (at most {MAX_FRAME})")
            if len(self._buf) < _FRAME.size + size:
                return
            frame = bytes(self._buf[:_FRAME.size + size])
            payload = frame[_FRAME.size:]
            del self._buf[:_FRAME.size + size]
            self._frame(kind, payload, frame)

    def _frame(self, kind: bytes, payload: bytes, frame: bytes) -> None:
        if kind == b"E":
            if len(payload) != DIGEST_SIZE + 8:
                raise BundleError("bad_format", "a malformed end frame")
            if payload[:DIGEST_SIZE] != self._hash.digest():
                raise BundleError("tampered", "the bundle's bytes do not match its end digest: it was changed")
            if int.from_bytes(payload[DIGEST_SIZE:], "big") != len(self.objects):
                raise BundleError("tampered", "the bundle's object count does not match its end frame")
            self._ended = True
            return
        self._hash.update(frame)
        if kind == b"H":
            if self.header is not None:
                raise BundleError("bad_format", "two headers")
            try:
                header = decode(payload)
            except LatticeError as e:
                raise BundleError("bad_format", f"an unreadable header: {e.message}") from None
            if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT or \
                    not isinstance(header.get("head"), bytes) or len(header["head"]) != DIGEST_SIZE:
                raise BundleError("bad_format", f"a header of another format: {str(header)[:200]}",
                                  hint=f"this server reads bundle format {BUNDLE_FORMAT}")
            self.header = header
        elif kind == b"O":
            if self.header is None:
                raise BundleError("bad_format", "an object before the header")
            if len(payload) < DIGEST_SIZE:
                raise BundleError("bad_format", "a malformed object frame")
            d, data = payload[:DIGEST_SIZE], payload[DIGEST_SIZE:]
            if digest(data) != d:
                raise BundleError("corrupt_object", f"object {d.hex()} does not match its digest")
            self.objects[d] = data
        else:
            raise BundleError("bad_format", f"an unknown frame kind {kind!r}")

    def finish(self, has: Callable[[bytes], bool] = lambda d: False, extra: Extra | None = None
               ) -> tuple[dict[str, Any], dict[bytes, bytes]]:
        """Check the end and completeness; return ``(header, objects)``.

        Args:
            has: whether the target store already holds an object (it need not be in the bundle).
            extra: other versions a commit's event needs (as the writer used).

        Raises:
            BundleError: ``truncated`` (no end frame, or a cut frame), ``incomplete``.
        """
        if not self._ended or self._buf:
            raise BundleError("truncated", "the bundle ends before its end frame: it was cut off",
                              hint="copy the whole file again")
        assert self.header is not None
        head = self.header["head"]
        objects = self.objects
        seen: set[bytes] = set()
        stack = [head]
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            data = objects.get(d)
            if data is None:
                if has(d):
                    continue
                raise BundleError("incomplete", f"object {d.hex()} is reachable from the head but not in the bundle")
            stack.extend(children(data, extra, objects.get))
        return self.header, objects


def read_bundle(chunks: Iterable[bytes], has: Callable[[bytes], bool] = lambda d: False,
                extra: Extra | None = None, max_bytes: int | None = None) -> tuple[dict[str, Any], dict[bytes, bytes]]:
    """Read and check a whole bundle (see :class:`BundleReader`)."""
    r = BundleReader(max_bytes)
    for c in chunks:
        r.feed(c)
    return r.finish(has, extra)
