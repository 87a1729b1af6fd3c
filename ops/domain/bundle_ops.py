"""Declarations of the bundle operations: ``agent:export`` and ``agent:import``.

The same bundles as the routes ``GET /api/v1/agents/{agentId}/export`` and ``POST
/api/v1/agents/{agentId}/import`` (:mod:`ops.engine.bundles`), carried in JSON as base64,
so that ``/invoke``, MCP and the generated client have them. A JSON reply cannot stream:
an export holds at most :data:`MAX_EXPORT_BYTES` of bundle (``too_large`` above, naming the
route), an import at most what the server takes as a request body (its ``--max-body``).
Imported by :mod:`ops.domain` with :mod:`ops.domain.operations`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .contracts import Contract, declare
from .operations import AgentId
from .operations import _In, _Out  # the operations' input and output bases

__all__ = ["MAX_EXPORT_BYTES", "BASE64_PATTERN", "ExportInput", "ExportOutput", "ImportInput", "ImportOutput"]

#: largest bundle ``agent:export`` returns, bytes before base64 (larger: ``too_large``; the export route streams
#: any size)
MAX_EXPORT_BYTES = 16 << 20
#: base64 as ``agent:import`` takes a bundle: RFC 4648's standard alphabet, padded, no line breaks
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

_Digest = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$", description="blake3 of the bundle's bytes (64 hex digits)")]


class ExportInput(_In):
    agentId: AgentId
    from_: Annotated[int, Meta(ge=0, description="the first version in the bundle (a seq; it becomes the imported "
                                                 "agent's base); default: every version")] \
        | None = msgspec.field(default=None, name="from")


class ImportInput(_In):
    agentId: AgentId
    bundle: Annotated[str, Meta(description="the bundle (as agent:export gives it), base64 (RFC 4648, standard "
                                            "alphabet, padded)")]


class ExportOutput(_Out):
    agentId: str
    versions: Annotated[int, Meta(description="the head's seq + 1")]
    exportedAt: Annotated[int, Meta(description="when the bundle was made, ms since the epoch")]
    bytes: Annotated[int, Meta(description="the bundle's size, bytes (before base64)")]
    digest: _Digest
    bundle: Annotated[str, Meta(description="the bundle, base64; the job kept afterwards (GET /api/v1/jobs/{id}) "
                                            "leaves it out")] | UnsetType = UNSET
    from_: Annotated[int, Meta(description="the first version in the bundle, when `from` was given")] \
        | UnsetType = msgspec.field(default=UNSET, name="from")


class ImportOutput(_Out):
    agentId: str
    fromAgentId: Annotated[str, Meta(description="the agent's id where it was exported")]
    versions: Annotated[int, Meta(description="the imported agent's head seq + 1 (its agent:import version included)")]
    objects: Annotated[int, Meta(description="objects the bundle carried")]
    status: str


_V = "1.0.0"

declare(Contract("agent:export", _V, "An agent's history (all of it, or from a version on) as one content-addressed "
                 f"bundle, base64 (at most {MAX_EXPORT_BYTES >> 20} MiB of bundle; "
                 "GET /api/v1/agents/{agentId}/export streams any size). Writes nothing.", ExportInput, ExportOutput))
declare(Contract("agent:import", _V, "Load a bundle (base64, as agent:export gives it) as a new agent: every object "
                 "re-hashed, a bad bundle writes nothing.", ImportInput, ImportOutput, emits=("agent.created",)))
