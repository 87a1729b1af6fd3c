"""Bearer-token authentication: which caller a request acts as.

A tokens file is a JSON object mapping each bearer token to a caller id::

    {"3f8a...long random...": "alice", "c91e...": "bob"}

With tokens configured, every request must carry ``Authorization: Bearer
<token>`` (REST and MCP alike); the caller id then scopes every namespace
(``g/``, ``w/``, ``j/``): another caller's agents, workspace and jobs are
neither visible nor reachable. Tokens are compared in constant time and are
never logged or stored. Without tokens, every request acts as the single local
caller ``local``.
"""

from __future__ import annotations

import hmac
import json
import re
from pathlib import Path

__all__ = ["Tokens", "TokenFileError", "LOCAL_CALLER", "CALLER_ID"]

#: the caller of every request when no tokens are configured
LOCAL_CALLER = "local"
#: what a caller id may look like (it becomes a path segment of every ref)
CALLER_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}$")
_MIN_TOKEN = 16


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message says what to fix."""


class Tokens:
    """A set of bearer tokens, each naming a caller.

    Args:
        mapping: ``{token: caller id}``. Source: the operator's tokens file.

    Raises:
        TokenFileError: a token shorter than 16 characters, or a caller id
            that is not 1-64 of ``A-Z a-z 0-9 _ . @ + -``.
    """

    def __init__(self, mapping: dict[str, str]):
        if not mapping:
            raise TokenFileError("the tokens file holds no tokens")
        for token, caller in mapping.items():
            if not isinstance(token, str) or len(token) < _MIN_TOKEN:
                raise TokenFileError(f"every token must be a string of at least {_MIN_TOKEN} characters")
            if not isinstance(caller, str) or not CALLER_ID.fullmatch(caller):
                raise TokenFileError(f"caller id {caller!r} is not 1-64 of A-Z a-z 0-9 _ . @ + - "
                                     "(not starting with punctuation)")
        self._entries = [(t.encode(), c) for t, c in mapping.items()]

    @classmethod
    def load(cls, path: str | Path) -> "Tokens":
        """Read a tokens file.

        Raises:
            TokenFileError: unreadable, not JSON, not an object of strings, or invalid entries.
        """
        try:
            data = json.loads(Path(path).read_text())
        except OSError as e:
            raise TokenFileError(f"cannot read {path}: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise TokenFileError(f"{path} is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise TokenFileError(f"{path} must hold a JSON object mapping each token to a caller id")
        return cls(data)

    def caller(self, authorization: str | None) -> str | None:
        """The caller named by an ``Authorization`` header value, or None.

        Every configured token is compared (in constant time each), so the time
        taken does not depend on which token matched or how much of it did.
        Source of ``authorization``: the request (untrusted). A header that is not
        UTF-8 (aiohttp hands its bytes over as surrogate escapes) names no caller.

        >>> t = Tokens({"0123456789abcdef": "alice"})
        >>> t.caller("Bearer 0123456789abcdef"), t.caller("Bearer \\udcff\\udcfe"), t.caller("Basic x")
        ('alice', None, None)
        """
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            presented = token.strip().encode()
        except UnicodeEncodeError:  # not UTF-8: no token is spelled so
            return None
        found = None
        for known, caller in self._entries:
            if hmac.compare_digest(known, presented):
                found = caller
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Tokens({len(self._entries)} tokens)"  # never the tokens themselves
