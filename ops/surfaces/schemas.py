"""What the operation inputs accept, in JSON Schema, where their Structs do not say it.

The input Structs (:mod:`ops.domain.operations`) type each field; the handlers
then check more: a path's grammar, a config's keys and model, that ``state`` is
a map, that ``into`` needs ``from``. Without those rules a schema-valid request
could still be refused (400), and a client generated from the schema could not
know. :func:`refine` adds them to an operation's input schema for the documents
(:mod:`ops.surfaces.openapi`: OpenAPI, MCP tools, ``lattice schema``); the
server's own checks, with their clearer messages, stay where they are.

:func:`portable` rewrites a schema into the dialect MCP clients map most
easily: one ``type`` per schema (``anyOf`` branches instead of type arrays),
and an explicit ``anyOf`` of every JSON type where a value may be anything.

Where a rule here duplicates a check in ``ops/domain`` or ``ops/engine``, the
check is the truth: ``tests/http/test_openapi.py`` fuzzes the server against
the document (schemathesis, every check).
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from lattice.paths import MAX_DEPTH, MAX_SEGMENT

from ..domain.agent import BUILTIN_TOOLS, FREE_CONFIG_KEYS, MANAGED_STATE_KEYS, AgentConfig, HistoryMessage
from ..domain.bundle_ops import BASE64_PATTERN
from ..domain.contracts import Contract
from ..domain.operations import MAX_STEP_REPLIES
from ..domain.models import KEY_ENV, MAX_RETRY_WAIT, PROVIDERS, ScriptedCall, ScriptedRule

__all__ = ["PATH_PATTERN", "WRITE_PATH_PATTERN", "AGENT_PATH_PATTERN", "JOB_ID_PATTERN", "ANY", "JSON_VALUE",
           "refine", "defs", "portable"]

_SEG = rf"[^/\u0000-\u001f\u007f-\u009f]{{1,{MAX_SEGMENT}}}"
_MORE = MAX_DEPTH - 1
#: a lattice path: a namespace (g, w, j) and at most 63 segments (no control character, at most 256 characters)
PATH_PATTERN = rf"^(?:g|w|j)(?:/{_SEG}){{0,{_MORE}}}$"
#: a path a write accepts: below w/ (a g/ or j/ path is a FAILED job, `forbidden`)
WRITE_PATH_PATTERN = rf"^(?:(?:g|j)(?:/{_SEG}){{0,{_MORE}}}|w(?:/{_SEG}){{1,{_MORE}}})$"
#: a path of one agent (what `at` reads a version of)
AGENT_PATH_PATTERN = rf"^g(?:/{_SEG}){{1,{_MORE}}}$"
#: a job id: 32 hex digits, any case, ``0x`` optional
JOB_ID_PATTERN = "^(0x)?[0-9a-fA-F]{32}$"
#: any JSON value, said explicitly (a schema with no keyword reads as "forgot to say")
ANY = {"anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean", "null")]}

_NOT_NULL = {"not": {"type": "null"}}
#: the definition name of a free-form value a caller stores (state, task input, workspace value...)
JSON_VALUE = "JsonValue"


def _json_value(ref: dict[str, Any]) -> dict[str, Any]:
    """A value the lattice can hold: any JSON whose integers fit in 64 bits (keys are strings in JSON)."""
    return {"description": "any JSON value; its integers within -2^63 .. 2^64-1", "anyOf": [
        {"type": "object", "additionalProperties": ref}, {"type": "array", "items": ref}, {"type": "string"},
        {"type": "integer", "minimum": -(2 ** 63), "maximum": 2 ** 64 - 1},
        {"type": "number", "not": {"type": "integer"}}, {"type": "boolean"}, {"type": "null"}]}


def defs(ref_template: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(config ref, history ref, definitions)``: the config map and the history entry a caller may give.

    Args:
        ref_template: where the definitions will live, e.g. ``#/$defs/{name}``.
    """
    (config, history), out = msgspec.json.schema_components([AgentConfig, HistoryMessage],
                                                            ref_template=ref_template)
    value = {"$ref": ref_template.format(name=JSON_VALUE)}
    out = {name: _free(schema, value) for name, schema in out.items()}
    cfg = out["AgentConfig"]
    cfg["description"] = ("An agent's configuration: the keys the framework reads, and the free-form "
                          f"{' and '.join(FREE_CONFIG_KEYS)}; any other key is refused (invalid_config).")
    cfg["properties"].update({k: value for k in FREE_CONFIG_KEYS})
    cfg["properties"]["tools"]["anyOf"][0]["items"] = {"enum": sorted(BUILTIN_TOOLS)}
    cfg["properties"]["model"]["description"] = f"the model: provider one of {', '.join(PROVIDERS)}"
    for name, schema in out.items():
        if name != "HistoryMessage":  # unknown keys are refused throughout a config
            schema["additionalProperties"] = False
        schema.pop("title", None)
    for name in (ScriptedRule.__name__, ScriptedCall.__name__):
        out[name].pop("description", None)
    ai = out["OpenAIModel"]["properties"]
    ai["apiKeyEnv"]["anyOf"][0]["pattern"] = KEY_ENV.pattern
    ai["timeout"].update(exclusiveMinimum=0)
    ai["maxRetries"].update(minimum=0, maximum=10)
    ai["retryBackoff"].update(minimum=0, maximum=MAX_RETRY_WAIT)
    out[JSON_VALUE] = _json_value(value)
    return config, history, out


def _rules(config: dict[str, Any], history: dict[str, Any], value: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per operation: property schemas replacing the Struct's, and keywords added to the input's schema."""
    inline = {**config, "description": "an inline config map"}
    named = {"type": "string", "pattern": rf"^(?!w/)|^w(?:/{_SEG}){{1,{_MORE}}}$",
             "description": "the name of a shipped template, or a w/ path holding a config map"}
    state = {"anyOf": [{"type": "object", "properties": {
        **{k: {"not": {}, "description": "framework-managed: refused"} for k in MANAGED_STATE_KEYS},
        "history": {"type": "array", "items": history}}, "additionalProperties": value}, {"type": "null"}],
        "description": "a map of your own keys (history: the conversation, as a list of messages)"}
    path = {"type": "string", "pattern": PATH_PATTERN}
    # (each rule across fields is an `anyOf` of the cases: fuzzers negate an `if`/`then` without its `if`)
    read = {"properties": {"path": path},
            # a version is of one agent: its path is g/<agentId>/...
            "anyOf": [{"properties": {"at": {"type": "null"}}},
                      {"properties": {"at": _NOT_NULL, "path": {"pattern": AGENT_PATH_PATTERN}}, "required": ["at"]}]}
    write = {"properties": {"path": {"type": "string", "pattern": WRITE_PATH_PATTERN}}}
    task_scope = {"properties": {"taskId": {"type": "string", "pattern": JOB_ID_PATTERN}}}  # (both, or it fails)
    # a supplied model reply, inline: its tool calls' arguments are free-form values (64-bit integers)
    reply_call = {"type": "object", "properties": {"name": {"type": "string"}, "id": {"type": "string"},
                                                   "arguments": {"type": "object", "additionalProperties": value}},
                  "required": ["name"], "additionalProperties": False}
    replies = {"type": "array", "minItems": 1, "maxItems": MAX_STEP_REPLIES, "items": {
        "type": "object", "additionalProperties": False, "properties": {
            "content": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "toolCalls": {"type": "array", "items": reply_call}}}}
    no_thread = {"anyOf": [{"required": ["threadId"]}, {"required": ["ns"]}]}
    thread = {"required": ["threadId"], "not": {"required": ["agentId"]}}
    return {
        "agent:message": {"properties": {"message": {"allOf": [value, _NOT_NULL]}}},
        "agent:completeTask": task_scope, "agent:failTask": task_scope,
        "agent:step": {"properties": {"replies": replies}},
        "agent:import": {"properties": {"bundle": {"type": "string", "pattern": BASE64_PATTERN,
                                                   "contentEncoding": "base64",
                                                   "contentMediaType": "application/vnd.lattice.bundle"}}},
        "agent:create": {"properties": {"config": {"anyOf": [inline, named, {"type": "null"}]}, "state": state,
                                        "definition": {**named, "description": "a template name or a w/ path "
                                                       "holding a config map or {agent: {operation, config}} (an "
                                                       "asset or DID reference fails: not_supported)"}}},
        "agent:update": {"properties": {"config": {"anyOf": [inline, {"type": "null"}]}, "state": state}},
        "agent:fork": {"properties": {"config": {"anyOf": [inline, named, {"type": "null"}]}}},
        "agent:cancelTask": {"properties": {"taskId": {"type": "string", "pattern": JOB_ID_PATTERN}}},
        # sessions: a message or question is any value but null; a request binds a known session or opens one
        "agent:chat": {"properties": {"message": {"allOf": [value, _NOT_NULL]}}},
        "agent:query": {"properties": {"question": {"allOf": [value, _NOT_NULL]}}},
        # (and `wait` or `timeout`, not both; `strict` checks against a `responseSchema`)
        "agent:request": {"properties": {"session": {"anyOf": [
            {"type": "object", "properties": {"title": {"type": "string"}}, "additionalProperties": False},
            {"type": "null"}]}, "outputPath": {"type": "string", "pattern": WRITE_PATH_PATTERN}},
            "anyOf": [{"properties": {"session": {"type": "null"}}}, {"properties": {"sessionId": {"type": "null"}}}],
            "allOf": [{"anyOf": [{"not": {"required": ["wait"]}}, {"not": {"required": ["timeout"]}}]},
                      {"anyOf": [{"not": {"required": ["strict"]}}, {"properties": {"strict": {"const": False}}},
                                 {"required": ["responseSchema"]}]}]},
        "covia:read": read, "covia:list": read, "covia:slice": read,
        "covia:write": write, "covia:append": write, "covia:delete": write,
        # a what-if replay forks the agent at `from`: `into` (a new agent id) needs `from` (not null); its
        # `config` is checked even without `into`, where it is not read
        "agent:replay": {"properties": {"config": {"anyOf": [inline, {"type": "null"}]}},
                         "anyOf": [{"properties": {"into": {"type": "null"}}},
                                   {"properties": {"into": {"type": "string"}, "from": _NOT_NULL},
                                    "required": ["into", "from"]}]},
        # exactly one of `before` and `keepLast`
        "agent:prune": {"anyOf": [{"properties": {"before": _NOT_NULL, "keepLast": {"type": "null"}},
                                   "required": ["before"]},
                                  {"properties": {"keepLast": _NOT_NULL, "before": {"type": "null"}},
                                   "required": ["keepLast"]}]},
        # an agent (`agentId`) or a LangGraph thread (`threadId`, `ns`?), never both
        "agent:history": {"anyOf": [{"required": ["agentId"], "not": no_thread}, thread]},
        # two versions of one agent (`from`, `to`?), or the heads of two agents (`otherAgentId`), never both;
        # or two checkpoints of a thread (`from`, `to`?)
        "agent:diff": {"anyOf": [{"properties": {"otherAgentId": {"type": "null"}, "from": _NOT_NULL},
                                  "required": ["agentId", "from"], "not": no_thread},
                                 {"properties": {"otherAgentId": {"type": "string"}, "from": {"type": "null"},
                                                 "to": {"type": "null"}}, "required": ["agentId", "otherAgentId"],
                                  "not": no_thread},
                                 {**thread, "properties": {"otherAgentId": {"type": "null"}, "from": _NOT_NULL},
                                  "required": ["threadId", "from"]}]},
    }


def refine(contract: Contract, schema: dict[str, Any], ref_template: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The input schema of ``contract`` with the rules its handler checks, and the definitions they use.

    Args:
        contract: the operation.
        schema: its input's schema (an object schema, as msgspec generates it).
        ref_template: where the definitions will live, e.g. ``#/$defs/{name}``.

    Returns:
        ``(refined schema, definitions to add beside it)``; unchanged and ``{}`` for an
        operation without rules.
    """
    config, history, out = defs(ref_template)
    rule = _rules(config, history, {"$ref": ref_template.format(name=JSON_VALUE)}).get(contract.key, {})
    refined = _free(dict(schema), {"$ref": ref_template.format(name=JSON_VALUE)})  # the Struct's `Any` fields
    props = dict(refined.get("properties", {}))
    for name, replacement in rule.get("properties", {}).items():
        keep = {k: v for k, v in props.get(name, {}).items() if k in ("description", "default")}
        props[name] = {**keep, **replacement}
    refined["properties"] = props
    refined.update({k: v for k, v in rule.items() if k != "properties"})
    text = msgspec.json.encode(refined)
    if any(ref["$ref"].encode() in text for ref in (config, history)):
        return refined, out
    if ref_template.format(name=JSON_VALUE).encode() in text:
        return refined, {JSON_VALUE: out[JSON_VALUE]}
    return refined, {}


def _free(schema: Any, value: dict[str, Any], keyword: str | None = None) -> Any:
    """``schema`` with each free-form value (a schema saying nothing, an object or array of anything)
    spelled as ``value``, the reference to :data:`JSON_VALUE`, and each integer bounded to 64 bits."""
    if not isinstance(schema, dict):
        return schema
    out = {k: (_free(v, value, k) if k in _ONE else [_free(x, value, k) for x in v] if k in _MANY and isinstance(
        v, list) else {n: _free(x, value, k) for n, x in v.items()} if k in _MAP and isinstance(v, dict) else v)
        for k, v in schema.items()}
    if keyword is not None and keyword != "not" and not any(k in _CONSTRAINING for k in out):
        return {**out, **value}
    if out.get("type") == "integer":  # msgspec decodes 64-bit integers only
        out.setdefault("minimum", -(2 ** 63))
        out.setdefault("maximum", 2 ** 64 - 1)
    if out.get("type") == "object" and not ({"properties", "additionalProperties", "patternProperties"} & set(out)):
        out["additionalProperties"] = value
    if out.get("type") == "array" and "items" not in out:
        out["items"] = value
    return out


# -- the portable spelling ----------------------------------------------------------

_ANNOTATIONS = frozenset(("title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
                          "writeOnly", "$schema", "$id", "$defs", "$anchor"))
#: keywords that say something about the value (the MCP Inspector's list); `if` counts with `then`/`else`
_CONSTRAINING = frozenset((
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "format", "contentMediaType", "contentEncoding", "contentSchema",
    "maxItems", "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties",
    "required", "dependentRequired", "allOf", "anyOf", "oneOf", "not", "items", "prefixItems", "contains",
    "additionalItems", "unevaluatedItems", "properties", "patternProperties", "additionalProperties",
    "unevaluatedProperties", "propertyNames", "dependentSchemas", "dependencies", "$ref", "$dynamicRef"))
_ONE = ("items", "contains", "not", "propertyNames", "if", "then", "else", "additionalProperties",
        "unevaluatedProperties", "unevaluatedItems", "contentSchema")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "dependentSchemas", "$defs")


def _split_types(node: dict[str, Any]) -> dict[str, Any]:
    """``{"type": [a, b], ...}`` as ``anyOf`` branches of one type each (the same values)."""
    notes = {k: v for k, v in node.items() if k in _ANNOTATIONS}
    checks = {k: v for k, v in node.items() if k not in _ANNOTATIONS and k != "type"}
    # a type's own keywords ignore values of other types, so null needs none of them; these apply to any value
    general = any(k in ("enum", "const", "allOf", "anyOf", "oneOf", "not", "$ref", "if") for k in checks)
    return {**notes, "anyOf": [{"type": t, **checks} if t != "null" or general else {"type": t}
                               for t in node["type"]]}


def portable(schema: Any, *, _keyword: str | None = None) -> Any:
    """``schema`` in the portable spelling: no type arrays, no schema without a keyword (except under ``not``).

    Equivalent: it accepts exactly the values ``schema`` accepts.

    >>> portable({"type": ["object", "null"], "properties": {"a": {"description": "anything"}}})
    {'anyOf': [{'type': 'object', 'properties': {'a': {'description': 'anything', 'anyOf': [{'type': 'object'}, \
{'type': 'array'}, {'type': 'string'}, {'type': 'number'}, {'type': 'boolean'}, {'type': 'null'}]}}}, {'type': 'null'}]}
    """
    if not isinstance(schema, dict):
        return schema
    node: dict[str, Any] = {}
    for k, v in schema.items():
        if k in _ONE and isinstance(v, dict):
            node[k] = portable(v, _keyword=k)
        elif k in _MANY and isinstance(v, list):
            node[k] = [portable(s, _keyword=k) for s in v]
        elif k in _MAP and isinstance(v, dict):
            node[k] = {name: portable(s, _keyword=k) for name, s in v.items()}
        else:
            node[k] = copy.deepcopy(v)
    if isinstance(node.get("type"), list):
        node = _split_types(node) if len(node["type"]) > 1 else {**node, "type": node["type"][0]}
    constrains = any(k in _CONSTRAINING for k in node) or ("if" in node and ("then" in node or "else" in node))
    if not constrains and _keyword not in (None, "not"):  # the root and `not: {}` stay as they are
        node = {**node, **copy.deepcopy(ANY)}
    return node
