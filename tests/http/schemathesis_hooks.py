"""schemathesis hooks for fuzzing a live server (``SCHEMATHESIS_HOOKS=tests.http.schemathesis_hooks``).

* ``filter_body``: the ``hang`` model provider never answers, by design (it tests cancellation): an agent
  made with it and then run with ``wait: true`` blocks the request for ever, which schemathesis reports as
  a network error. Generated bodies that name it are left out; everything else the schema allows is sent.
* ``negative_data_rejection_of_invalid_data``: schemathesis' negative-data check (run it instead of
  ``negative_data_rejection``), confirming first that a "negative" request body is invalid. Negating one
  branch of an ``anyOf``/``oneOf`` (another operation's ``operation`` enum; a rule's second case) can leave
  a body that another branch accepts, and the server is right to run it. The body is validated against the
  served document with ``integer`` read as the server reads it: an integer literal (a number written with
  a fraction or an exponent, ``1e30``, is a float to the server, an "integer" to JSON Schema).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import schemathesis
from schemathesis.specs.openapi.checks import negative_data_rejection

from ops.surfaces.app import ROUTES
from ops.surfaces.openapi import openapi_document

__all__ = ["filter_body", "negative_data_rejection_of_invalid_data"]

_DOC = openapi_document(ROUTES)
_LEXICAL = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=(
    jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))))
#: operations whose only input is the JSON body
_BODY_ONLY = {(r.method, r.path) for r in ROUTES if r.request_body is not None and not r.parameters}


def _names_hang(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get("provider") == "hang" or any(_names_hang(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_hang(v) for v in value)
    return value == "hang"  # a config given as a template name


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    return not _names_hang(body)


def _valid_body(method: str, path: str, body: Any) -> bool:
    op = _DOC["paths"].get(path, {}).get(method.lower(), {})
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return False
    return _LEXICAL({**schema, "components": _DOC["components"]}).is_valid(body)


@schemathesis.check
def negative_data_rejection_of_invalid_data(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is not None and meta.generation.mode.is_negative and (case.method, case.path) in _BODY_ONLY \
            and not case.query and isinstance(case.body, (dict, list)) and _valid_body(case.method, case.path,
                                                                                         case.body):
        return None
    return negative_data_rejection(ctx, response, case)
