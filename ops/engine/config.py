"""Config resolution: an agent's ``config`` as an inline map, a shipped template, or a ``w/`` path."""

from __future__ import annotations

import importlib.resources
import json
from typing import Any, Callable

import msgspec

from lattice.errors import InvalidPath
from lattice.paths import Missing, parse_path

from ..domain import agent as A
from ..domain.contracts import validation_error
from ..domain.errors import OpError, Rejected
from ..domain.models import PROVIDERS, Connections

__all__ = ["templates", "resolve_config", "check_inline_config", "check_state"]


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
        if config.startswith(("w/", "/w/")):  # a leading / as Covia paths may have
            try:
                _, segs = parse_path(config.removeprefix("/"))
            except InvalidPath as e:
                raise Rejected("invalid_path", e.message, path=path) from None
            value = read_workspace(segs)
            if value is Missing:
                raise OpError("not_found", f"no config at {config}", path=path)
            if not isinstance(value, dict):
                raise OpError("invalid_config", f"{config} holds a {type(value).__name__}, expected a config map",
                              path=path)
            where, cfg = config, value
        else:
            tpl = templates()
            if config not in tpl:
                raise OpError("not_found", f"no config template {config!r}", path=path,
                              hint=f"templates: {', '.join(sorted(tpl))}; or pass an inline map or a w/ path")
            where, cfg = f"template {config}", tpl[config]
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
    check_inline_config(config, path)
    _allowed(config, connections, path)
    return config


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
