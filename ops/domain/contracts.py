"""Operation contracts: each operation declared once, every surface derived from it.

A :class:`Contract` names the operation (``agent:create``), its version and
summary, its input and output ``msgspec.Struct`` types, the auth policy and
the events it emits. The HTTP invoke endpoint and the CLI look operations up
in :data:`REGISTRY`; JSON Schema comes from the Struct types.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from .errors import Rejected

__all__ = ["MAX_NESTING", "Contract", "REGISTRY", "VENUE_ONLY_ADAPTERS", "declare", "canonical_key", "lookup",
           "decode_input", "validation_error", "input_schema",
           "catalog_entry"]


@dataclass(frozen=True)
class Contract:
    """One operation's declaration.

    Attributes:
        key: the operation key, e.g. ``agent:create``.
        version: semantic version of the contract.
        summary: one line for catalogs and ``--help``.
        input: Struct type the ``input`` object is decoded into (unknown fields rejected).
        output: Struct type describing the job's ``output``.
        auth: ``"caller"``: any authenticated caller, acting in its own namespace.
        emits: names of the events the operation emits.
    """

    key: str
    version: str
    summary: str
    input: type
    output: type
    auth: str = "caller"
    emits: tuple[str, ...] = ()

    @property
    def alias(self) -> str:
        """The Covia venue's name of the operation: ``v/ops/agent/create``, ``v/ops/agent/cancel-task``."""
        adapter, _, name = self.key.partition(":")
        return f"v/ops/{adapter}/{re.sub(r'([A-Z])', lambda m: '-' + m.group(1).lower(), name)}"

    @property
    def snake_name(self) -> str:
        """The key in snake_case, for method and tool names: ``agent_cancel_task``."""
        return re.sub(r"[^a-z0-9]+", "_", re.sub(r"([A-Z])", r"_\1", self.key).lower())


REGISTRY: dict[str, Contract] = {}


def declare(contract: Contract) -> Contract:
    """Add ``contract`` to the registry (a key may be declared once)."""
    if contract.key in REGISTRY:
        raise ValueError(f"operation {contract.key} declared twice")
    REGISTRY[contract.key] = contract
    return contract


#: adapters of the Covia venue that this server does not run: their operations are ``not_supported`` (501),
#: not unknown (assets, secrets and UCANs are the venue's; the others are its integrations)
VENUE_ONLY_ADAPTERS = frozenset({"asset", "secret", "ucan", "auth", "a2a", "grid", "convex", "dlfs", "file", "json",
                                 "jvm", "langchain", "llmagent", "mcp", "scheduler", "goaltree", "schema", "vault"})

_KEBAB = re.compile(r"-([a-z0-9])")


def canonical_key(name: str) -> str:
    """The registry key a name of an operation stands for (the name itself when it is not an alias).

    Keys are ``<adapter>:<camelCase>``. The Covia venue names an operation by its catalog path
    ``v/ops/<adapter>/<kebab-case>`` (a leading ``/`` allowed) and the SDKs also send
    ``<adapter>:<kebab-case>``; both map to the key, as does the camelCase path.

    >>> [canonical_key(n) for n in ("v/ops/agent/cancel-task", "/v/ops/covia/read", "agent:session-read",
    ...                              "agent:completeTask", "v/ops/agent/cancelTask", "agent:create")]
    ['agent:cancelTask', 'covia:read', 'agent:sessionRead', 'agent:completeTask', 'agent:cancelTask', 'agent:create']
    """
    n = name[1:] if name.startswith("/v/ops/") else name
    if n.startswith("v/ops/"):
        adapter, sep, op = n[len("v/ops/"):].partition("/")
        if not sep or "/" in op or ":" in adapter:
            return name
        n = f"{adapter}:{op}"
    adapter, sep, op = n.partition(":")
    if not sep:
        return name
    return f"{adapter}:{_KEBAB.sub(lambda m: m.group(1).upper(), op)}"


def lookup(name: Any) -> Contract:
    """Find an operation by key or by one of its Covia names (:func:`canonical_key`): ``agent:cancelTask``,
    ``v/ops/agent/cancel-task``, ``agent:cancel-task``.

    Raises:
        Rejected: ``unknown_operation`` (with the closest known keys as a hint); ``not_supported`` (501): an
            operation of one of the venue's :data:`VENUE_ONLY_ADAPTERS` (``v/ops/secret/set``, ``asset:store``).
    """
    if isinstance(name, str):
        key = canonical_key(name)
        if key in REGISTRY:
            return REGISTRY[key]
        adapter = key.partition(":")[0]
        if adapter in VENUE_ONLY_ADAPTERS and ":" in key:
            raise Rejected("not_supported", f"{name!r} is a Covia venue operation this server does not support: "
                           f"agent-lattice serves the agent and lattice operations only ({adapter}:* is not one)",
                           path="$.operation", hint="GET /api/v1/operations lists what this server runs")
    close = difflib.get_close_matches(str(name), list(REGISTRY), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "GET the catalog with `lattice ops`"
    raise Rejected("unknown_operation", f"unknown operation {name!r}", path="$.operation", hint=hint)


_AT = re.compile(r" - at `(\$[^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def validation_error(err: msgspec.ValidationError, prefix: str = "$.input") -> Rejected:
    """Turn a msgspec validation error into an ``invalid_input`` rejection with a path."""
    msg = str(err)
    m = _AT.search(msg)
    path = prefix + m.group(1)[1:] if m else prefix
    text = _AT.sub("", msg)
    hint = None
    if mm := _MISSING.search(text):
        path = f"{path}.{mm.group(1)}"
        hint = f"add `{mm.group(1)}` to the input"
    elif mu := _UNKNOWN.search(text):
        path = f"{path}.{mu.group(1)}"
        hint = "remove the field or check its spelling"
    return Rejected("invalid_input", f"{text} - at `{path}`", path=path, hint=hint)


def decode_input(contract: Contract, raw: Any) -> Any:
    """Validate ``raw`` (decoded JSON) against the contract's input type.

    Raises:
        Rejected: ``invalid_input`` with ``path`` into the request.
    """
    if raw is None:
        raw = {}
    where = _too_deep(raw, MAX_NESTING)
    if where is not None:
        raise Rejected("invalid_input", f"value nested deeper than {MAX_NESTING} levels - at `{where}`", path=where,
                       hint="flatten the value")
    if not isinstance(raw, dict):
        raise Rejected("invalid_input", f"Expected `object`, got `{type(raw).__name__}` - at `$.input`", path="$.input")
    try:
        return msgspec.convert(raw, contract.input)
    except msgspec.ValidationError as e:
        raise validation_error(e) from None


#: deepest nesting of lists/maps accepted in an input
MAX_NESTING = 64


def _too_deep(value: Any, limit: int) -> str | None:
    """Return the path of the first container nested deeper than ``limit``, else None (iterative)."""
    stack = [(value, 0, "$.input")]
    while stack:
        v, depth, path = stack.pop()
        if isinstance(v, dict):
            items = [(x, f"{path}.{k}") for k, x in v.items()]
        elif isinstance(v, list):
            items = [(x, f"{path}[{i}]") for i, x in enumerate(v)]
        else:
            continue
        if depth >= limit:
            return path
        stack.extend((x, depth + 1, p) for x, p in items)
    return None


def input_schema(contract: Contract) -> dict[str, Any]:
    """JSON Schema of the contract's input."""
    return msgspec.json.schema(contract.input)


def catalog_entry(contract: Contract) -> dict[str, Any]:
    """The contract as published in the operation catalog (``GET /api/v1/operations``)."""
    return {"operation": contract.key, "alias": contract.alias, "version": contract.version,
            "summary": contract.summary, "auth": contract.auth, "emits": list(contract.emits),
            "input": input_schema(contract)}
