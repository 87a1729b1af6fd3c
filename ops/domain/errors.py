"""Operation errors with stable codes, and the one place codes map to HTTP statuses.

Two kinds of failure reach a client:

* a **rejection** (no job is created, nothing changes): the HTTP status comes
  from :data:`HTTP_STATUS` and the body is ``{"error": {code, message, path?, hint?}}``;
* an **operation failure**: a ``FAILED`` job whose ``error`` is ``{code, message}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OpError", "Rejected", "HTTP_STATUS", "http_status", "status_code"]


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
