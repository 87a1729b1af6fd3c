"""``agent:export`` and ``agent:import``: the bundles of :mod:`ops.engine.bundles` as operations.

A bundle travels in JSON as base64 (:mod:`ops.domain.bundle_ops`). An export reads the
agent's head when called and writes nothing; its reply holds at most
:data:`ops.domain.bundle_ops.MAX_EXPORT_BYTES` of bundle (a larger one fails ``too_large``,
its hint naming the streaming route). An import is the route's: every object re-hashed,
the bundle checked whole before anything is written, then one unit; a bundle that cannot
be loaded is a ``FAILED`` job with the code the route answers 400 with (only input the
schema refuses, text that is not base64, is a rejection). Both act in the caller's namespace.

Neither job is stored (an export changes nothing; an import's changes are its agent's, as
a what-if replay's), and the job kept in memory carries no bundle: an export's output
keeps its header, size and digest, an import's input is ``{agentId, bytes, digest}``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import blake3

from lattice.bundle import BundleError, BundleReader

from ...domain import bundle_ops as BO
from ...domain import jobs as J
from ...domain.errors import OpError, Rejected
from .. import bundles as B  # (the module, not its names: it imports this package's retention handler)
from ..context import Engine

__all__ = ["HANDLERS", "export", "import_"]

_BASE64 = re.compile(BO.BASE64_PATTERN[1:-1])


def _in_input(e: OpError) -> OpError:
    """``e``, its path made to point into the operation's input (the routes' ``$.from`` -> ``$.input.from``)."""
    if e.path and e.path.startswith("$.") and not e.path.startswith("$.input"):
        e.path = "$.input" + e.path[1:]
    return e


def _decode(text: str) -> bytes:
    """The bytes of base64 ``text`` (:data:`~ops.domain.bundle_ops.BASE64_PATTERN`, as the schema says).

    Raises:
        Rejected: ``invalid_input``, saying where the text stops being base64.
    """
    at = _BASE64.match(text).end()  # how far the pattern (without its anchors) matches: whole groups of four
    if at != len(text):
        raise Rejected("invalid_input", f"Expected base64 (standard alphabet, padded, no line breaks), got "
                                        f"{text[at:at + 8]!r} at character {at} of {len(text)} - at `$.input.bundle`",
                       path="$.input.bundle", hint="send the `bundle` agent:export gives, or base64 of a bundle file")
    return base64.b64decode(text)


async def export(engine: Engine, caller: str, inp: BO.ExportInput, job: dict) -> dict:
    """The bundle of the caller's agent ``inp.agentId`` (from version ``inp.from_`` on):
    ``{agentId, versions, from?, exportedAt, bytes, digest, bundle}``.

    Raises:
        OpError: ``not_found`` (no such agent of the caller; ``from`` past the head or pruned),
            ``conflict`` (a later run needs a version before ``from``), ``too_large`` (the
            bundle is over :data:`~ops.domain.bundle_ops.MAX_EXPORT_BYTES`).
    """
    try:
        header, chunks = B.export_agent(engine, caller, inp.agentId, inp.from_)
    except OpError as e:
        _in_input(e)
        raise
    limit = BO.MAX_EXPORT_BYTES
    data = bytearray()
    for piece in chunks:
        data += piece
        if len(data) > limit:
            aid = inp.agentId
            raise OpError("too_large", f"the bundle of agent {aid!r} is over {limit} bytes, the most agent:export "
                                       "returns in one reply",
                          hint=f"GET /api/v1/agents/{aid}/export streams it (`lattice export {aid} -o FILE`)")
    out: dict[str, Any] = {**header, "bytes": len(data), "digest": blake3.blake3(data).hexdigest(),
                           "bundle": base64.b64encode(data).decode("ascii")}
    done = J.finish(job, J.COMPLETE, engine.clock(), output=out)
    engine.jobs.remember(caller, {**done, "output": {k: v for k, v in out.items() if k != "bundle"}})
    return done


async def import_(engine: Engine, caller: str, inp: BO.ImportInput, job: dict) -> dict:
    """Load ``inp.bundle`` (base64) as the caller's agent ``inp.agentId``:
    ``{agentId, fromAgentId, versions, objects, status}``.

    Source: ``inp.bundle`` (untrusted).

    A schema-valid bundle that cannot be loaded is a ``FAILED`` job (nothing written) with the
    import route's code: ``bad_format``, ``truncated``, ``corrupt_object``, ``tampered``,
    ``incomplete`` (the bundle); ``conflict`` (the agent exists, or a job id of its pending
    work does); ``limit_exceeded`` (the caller's agent quota).

    Raises:
        Rejected: ``invalid_input`` (``bundle`` is not base64, the schema's pattern).
    """
    data = _decode(inp.bundle)
    job = {**job, "input": {"agentId": inp.agentId, "bytes": len(data), "digest": blake3.blake3(data).hexdigest()}}
    reader = BundleReader(B.MAX_IMPORT)
    try:
        try:
            reader.feed(data)
        except BundleError as e:
            raise OpError(e.code, e.message, hint=e.hint) from None
        del data
        out = await B.import_agent(engine, caller, inp.agentId, reader)
    except OpError as e:  # (the bundle's codes come as Rejected) a FAILED job, kept without the bundle
        done = J.finish(job, J.FAILED, engine.clock(), error=_in_input(e).to_dict())
        engine.jobs.remember(caller, done)
        return done
    done = J.finish(job, J.COMPLETE, engine.clock(), output=out)
    engine.jobs.remember(caller, done)
    return done


HANDLERS = {"agent:export": export, "agent:import": import_}
