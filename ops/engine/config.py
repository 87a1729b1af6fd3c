"""Config resolution: an agent's ``config`` as an inline map, a shipped template, or a ``w/`` path."""

from __future__ import annotations

import importlib.resources
import json
import re
from typing import Any, Callable

import msgspec

from lattice.errors import InvalidPath
from lattice.paths import Missing, parse_path

from ..domain import agent as A
from ..domain.contracts import validation_error
from ..domain.errors import OpError, Rejected
from ..domain.models import PROVIDERS, Connections

__all__ = ["templates", "resolve_config", "resolve_definition", "check_inline_config", "check_state"]


def templates() -> dict[str, dict[str, Any]]:
    """The shipped config templates (``ops/templates/<name>.json``)."""
    out = {}
    for f in importlib.resources.files("ops").joinpath("templates").iterdir():
        if f.name.endswith(".json"):
            out[f.name[:-5]] = json.loads(f.read_text())
    return out


def resolve_config(config: Any, read_workspace: Callable[[list[str]], Any], connections: Connections,
                   path: str = "$.input.config") -> dict[str, Any] | None:
    """The config map ``config`` names, validated, and allowed by the model connection policy.

    Args:
        config: None, an inline map, a template name, or a ``w/`` (or ``/w/``) path. Source: the caller.
        read_workspace: ``segments below w/ -> value`` (``Missing`` if absent).
        connections: the declared model connections and their rule.
        path: where ``config`` is in the request (for errors).

    Raises:
        Rejected: ``invalid_path`` (a malformed ``w/`` path), ``invalid_input`` (an inline map
            that is not a valid config; with the providers as a hint for a bad provider),
            ``invalid_config`` (an inline map with a key the framework does not know, with
            a "did you mean" hint).
        OpError: ``not_found`` (no such template or workspace value), ``invalid_config``
            (the template or workspace value is not a valid config, or names an undeclared
            connection), ``forbidden`` (a model endpoint or key the operator did not declare).
    """
    if config is None:
        return None
    if isinstance(config, str):
        where, value = _named(config, read_workspace, path)
        if not isinstance(value, dict):
            raise OpError("invalid_config", f"{config} holds a {type(value).__name__}, expected a config map",
                          path=path)
        return _checked(where, value, connections, path)
    check_inline_config(config, path)
    _allowed(config, connections, path)
    return config


def _named(ref: str, read_workspace: Callable[[list[str]], Any], path: str) -> tuple[str, Any]:
    """``(description, value)`` of a config source named by a string: a ``w/`` path or a template."""
    if ref.startswith(("w/", "/w/")):  # a leading / as Covia paths may have
        try:
            _, segs = parse_path(ref.removeprefix("/"))
        except InvalidPath as e:
            raise Rejected("invalid_path", e.message, path=path) from None
        value = read_workspace(segs)
        if value is Missing:
            raise OpError("not_found", f"no config at {ref}", path=path)
        return ref, value
    tpl = templates()
    if ref not in tpl:
        raise OpError("not_found", f"no config template {ref!r}", path=path,
                      hint=f"templates: {', '.join(sorted(tpl))}; or pass an inline map or a w/ path")
    return f"template {ref}", tpl[ref]


def _checked(where: str, cfg: dict[str, Any], connections: Connections, path: str) -> dict[str, Any]:
    """``cfg`` (read from ``where``) once it is a valid, allowed config."""
    try:
        A.check_config(cfg)
    except msgspec.ValidationError as e:
        raise OpError("invalid_config", f"{where}: {e}", path=path) from None
    unknown = A.unknown_config_key(cfg)
    if unknown is not None:
        raise OpError("invalid_config", f"{where}: {unknown[1]} - at `{path}{unknown[0]}`", path=path + unknown[0],
                      hint=unknown[2])
    _allowed(cfg, connections, path)
    return cfg


#: an asset reference (``/a/<hash>``, a bare hash) or a DID URL: not config sources here
_ASSET_REF = re.compile(r"(/?a/)?(0x)?[0-9a-fA-F]{64}|did:.*", re.DOTALL)


def resolve_definition(definition: str, read_workspace: Callable[[list[str]], Any],
                       connections: Connections) -> dict[str, Any]:
    """The config an ``agent:create {definition}`` names: a template name or a ``w/`` path holding
    a config map, or the venue's legacy definition ``{agent: {operation?, config?}}`` (its
    ``config`` with its ``operation``). Source of ``definition``: the caller.

    Raises:
        Rejected: ``invalid_path`` (a malformed ``w/`` path).
        OpError: ``not_supported`` (an asset reference or DID URL: there is no asset store
            here), ``not_found`` (no such template or workspace value), ``invalid_config`` (not
            a config map or legacy definition, or not a valid config), ``forbidden`` (a model
            endpoint or key the operator did not declare).
    """
    path = "$.input.definition"
    if _ASSET_REF.fullmatch(definition):
        raise OpError("not_supported", f"definition {definition!r} is an asset or DID reference; this server has "
                                       f"no asset store", path=path,
                      hint="covia:write the definition to a w/ path and pass that path, or a template name")
    where, value = _named(definition, read_workspace, path)
    agent = value.get("agent") if isinstance(value, dict) else None
    if isinstance(agent, dict):  # the venue's legacy nested format
        cfg = agent.get("config") if agent.get("config") is not None else {}
        if not isinstance(cfg, dict):
            raise OpError("invalid_config", f"{where}: agent.config is a {type(cfg).__name__}, expected a map",
                          path=path)
        value = {**cfg, **({"operation": agent["operation"]} if "operation" in agent else {})}
    if not isinstance(value, dict):
        raise OpError("invalid_config", f"{where} holds a {type(value).__name__}, expected a config map or "
                                        f"{{agent: {{operation, config}}}}", path=path)
    return _checked(f"definition {where}", value, connections, path)


def check_inline_config(config: dict[str, Any], path: str) -> None:
    """Check a config map given inline in a request (the connection policy aside).

    Raises:
        Rejected: ``invalid_input`` (a key of the wrong shape; a bad provider, with the providers
            as a hint), ``invalid_config`` (a key the framework does not know, with "did you mean").
    """
    try:
        A.check_config(config)
    except msgspec.ValidationError as e:
        rej = validation_error(e, path)
        if rej.path and rej.path.endswith(".model.provider"):
            rej.hint = f"providers: {', '.join(PROVIDERS)}"
        raise rej from None
    unknown = A.unknown_config_key(config)
    if unknown is not None:
        raise Rejected("invalid_config", f"{unknown[1]} - at `{path}{unknown[0]}`", path=path + unknown[0],
                       hint=unknown[2])


def _allowed(config: dict[str, Any], connections: Connections, path: str) -> None:
    err = connections.check(config.get("model"))
    if err is not None:
        raise OpError(err.code, err.message, path=path + err.path, hint=err.hint)


def check_state(state: Any) -> None:
    """Validate a caller-supplied ``state``: a map (or null) of the caller's own keys, with a
    well-formed ``history`` when it gives one.

    Raises:
        Rejected: ``invalid_input`` (not a map, a framework-managed key, a bad history entry;
            with its path and a hint).
    """
    problem = A.state_problem(state)
    if problem is not None:
        raise Rejected("invalid_input", f"{problem[1]} - at `$.input.state{problem[0]}`",
                       path="$.input.state" + problem[0], hint=problem[2])
    if isinstance(state, dict) and "history" in state:
        try:
            A.check_history(state["history"])
        except msgspec.ValidationError as e:
            raise validation_error(e, "$.input.state.history") from None
