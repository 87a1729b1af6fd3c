"""Operation errors with stable codes, and the one place codes map to HTTP statuses.

Two kinds of failure reach a client:

* a **rejection** (no job is created, nothing changes): the HTTP status comes
  from :data:`HTTP_STATUS` and the body is the Covia venue's ``{"error": message}``
  with our code and pointers beside it: ``{"error", "errorCode", "path"?, "hint"?}``
  (:func:`error_body`);
* an **operation failure**: a ``FAILED`` job. Its stored record keeps ``error`` as
  ``{code, message, path?, hint?}``; every surface shows it as the venue does, the
  message in ``error`` and the code in ``errorCode`` (:func:`error_fields`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["OpError", "Rejected", "HTTP_STATUS", "http_status", "status_code", "error_body", "error_fields"]


class OpError(Exception):
    """An operation failed: becomes a ``FAILED`` job (or a rejection, see :class:`Rejected`).

    Args:
        code: stable snake_case code (``not_found``, ``conflict``, ``forbidden``,
            ``illegal_state``, ``llm_error``, ...).
        message: what was expected, what was found, and where.
        path: pointer into the request (``$.input.agentId``), when there is one.
        hint: how to fix it.
    """

    def __init__(self, code: str, message: str, *, path: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.path, self.hint = code, message, path, hint

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.path:
            d["path"] = self.path
        if self.hint:
            d["hint"] = self.hint
        return d

    def body(self) -> dict[str, Any]:
        """The error as a rejection's body: :func:`error_body`."""
        return error_body(self.code, self.message, self.path, self.hint)


class Rejected(OpError):
    """A request refused before any job exists; mapped to an HTTP status by code."""


#: HTTP status of each rejection code (operation failures are jobs: 200).
HTTP_STATUS: dict[str, int] = {
    "invalid_json": 400,
    "invalid_input": 400,
    "invalid_path": 400,
    "invalid_config": 400,
    "bad_format": 400,
    "truncated": 400,
    "corrupt_object": 400,
    "tampered": 400,
    "incomplete": 400,
    "unauthorized": 401,
    "token_malformed": 401,
    "token_algorithm": 401,
    "token_issuer": 401,
    "token_signature": 401,
    "token_expired": 401,
    "token_claims": 401,
    "token_audience": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "not_supported": 501,
    "unknown_operation": 404,
    "method_not_allowed": 405,
    "too_large": 413,
    "limit_exceeded": 429,
    "unsupported_media_type": 415,
    "internal_error": 500,
}


def http_status(code: str) -> int:
    """HTTP status for a rejection code (400 for any code not listed)."""
    return HTTP_STATUS.get(code, 400)


def status_code(status: int) -> str:
    """The code for an HTTP status raised by the framework itself (an unknown route: 404 ``not_found``)."""
    return next((c for c, s in HTTP_STATUS.items() if s == status), "http_error")


def error_body(code: str, message: str, path: str | None = None, hint: str | None = None) -> dict[str, Any]:
    """A rejection's body, as the Covia venue sends one (the message in ``error``) with our extras.

    >>> error_body("not_found", "no agent 'A'", "$.input.agentId")
    {'error': "no agent 'A'", 'errorCode': 'not_found', 'path': '$.input.agentId'}
    """
    out: dict[str, Any] = {"error": message, "errorCode": code}
    if path:
        out["path"] = path
    if hint:
        out["hint"] = hint
    return out


def error_fields(error: Any) -> dict[str, Any]:
    """A stored job error (``{code, message, path?, hint?}`` or None) as the fields a job shows:
    ``error`` (the message, or None), ``errorCode`` (or None), ``path``/``hint`` when recorded.

    >>> error_fields(None)
    {'error': None, 'errorCode': None}
    >>> error_fields({"code": "cancelled", "message": "cancelled by caller"})
    {'error': 'cancelled by caller', 'errorCode': 'cancelled'}
    """
    if not isinstance(error, dict):
        return {"error": None if error is None else str(error), "errorCode": None}
    return error_body(error.get("code"), error.get("message"), error.get("path"), error.get("hint"))
