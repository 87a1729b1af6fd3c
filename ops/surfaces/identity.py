"""Who a request acts as: bearer tokens, self-issued ``did:key`` tokens, and the venue's own DID document.

**Callers.** Every request but the public ones (the inspector's files, the DID document)
goes through :func:`authenticate`, which sets the caller (:data:`ops.surfaces.common.CALLER`):

* ``Authorization: Bearer <token>`` naming a caller in the ``--tokens`` file: that caller id;
* with ``--accept-did-auth``, ``Authorization: Bearer <JWT>`` self-issued by a ``did:key``
  (the Covia SDK's ``Ed25519Auth``), verified by :class:`DidAuth`: the DID string itself.
  A DID caller's agents, workspace and jobs are its own, exactly as a token caller's are
  (the caller id scopes every ref, :mod:`ops.domain.refs`), and no token caller id can
  equal a DID (token ids have no ``:``);
* no ``Authorization``: without ``--tokens``, the one local caller (``local``); with, 401.

A bearer that is neither is refused with 401 and nothing changes (without ``--tokens`` and
without ``--accept-did-auth``, the header is ignored: there is one local caller). The error
codes (the rejection body ``{"error": message, "errorCode": code, "hint"}``):

=====================  =================================================================
``unauthorized``       no token, or a token that is not in the tokens file (nor a JWT
                       while ``--accept-did-auth`` is on)
``token_malformed``    not a JWT (three base64url parts: a JSON header, a JSON claims object,
                       a signature); without ``--tokens`` every bearer must be a DID token
``token_algorithm``    the header's ``alg`` is not ``EdDSA`` (``none``, ``HS256``, ``RS256``...)
``token_issuer``       ``sub``/``iss`` not a ``did:key`` holding an Ed25519 key, ``iss`` and
                       ``sub`` naming two DIDs, or a ``kid`` naming another key
``token_signature``    the signature does not verify against the DID's key
``token_expired``      ``exp`` has passed (beyond :data:`LEEWAY` seconds)
``token_claims``       ``exp`` missing or not a number; ``iat``/``nbf`` not numbers or in the
                       future; ``exp`` more than :data:`MAX_LIFETIME` seconds ahead
``token_audience``     ``aud`` present and not this venue's DID (a token for another venue)
=====================  =================================================================

A token without ``aud`` is accepted, as the Covia venue accepts it (a plain self-issued
identity); the SDK sets ``aud`` to the DID this server reports whenever it can read it.

**The DID document** (``GET /.well-known/did.json``, public like the venue's) names the
venue's key (:mod:`ops.engine.identity`) and its API endpoint.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..domain.did import ed25519_key, multibase_key
from ..domain.errors import error_body
from .auth import Tokens
from .common import CALLER, RUNTIME, TOKENS, reply
from .routes import Route

__all__ = ["DID_AUTH", "LEEWAY", "MAX_LIFETIME", "CODES", "AuthFailed", "DidAuth", "authenticate", "is_public",
           "several_callers", "did_json", "ROUTES"]

#: the verifier of DID tokens, or None (``--accept-did-auth`` off)
DID_AUTH = web.AppKey("did_auth", object)
#: seconds of clock difference allowed on ``exp``, ``nbf`` and ``iat``
LEEWAY = 30
#: the furthest ahead a token's ``exp`` may be, seconds (the SDK's tokens live 300 s)
MAX_LIFETIME = 24 * 3600
#: every code an authentication failure answers with (all HTTP 401)
CODES = ("unauthorized", "token_malformed", "token_algorithm", "token_issuer", "token_signature", "token_expired",
         "token_claims", "token_audience")

_DID_HINT = ("sign a fresh EdDSA JWT whose sub (and iss) is your did:key, e.g. with the Covia SDK's "
             "covia.auth.Ed25519Auth; its aud, if any, must be this server's DID (GET /.well-known/did.json)")


class AuthFailed(Exception):
    """A request's credentials are refused (401): ``code`` is one of :data:`CODES`."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class DidAuth:
    """Verifies self-issued EdDSA JWTs signed by the key of their ``did:key`` subject.

    Args:
        venue_did: this venue's DID: the only ``aud`` accepted.
        leeway: seconds of clock skew allowed (default :data:`LEEWAY`).
        max_lifetime: the furthest ahead ``exp`` may be, seconds (default :data:`MAX_LIFETIME`).
        clock: Unix seconds now (for the lifetime bound; PyJWT reads the system clock for the rest).
    """

    def __init__(self, venue_did: str, *, leeway: int = LEEWAY, max_lifetime: int = MAX_LIFETIME,
                 clock: Callable[[], float] = time.time):
        self.venue_did, self.leeway, self.max_lifetime, self.clock = venue_did, leeway, max_lifetime, clock

    def caller(self, token: str) -> str:
        """The ``did:key`` that signed ``token``. Source: the request (untrusted).

        Raises:
            AuthFailed: with the code of the first check that fails, in the order of
                :data:`CODES` (the module doc says what each means).
        """
        if not token.isascii():  # a JWT is base64url and dots: PyJWT would not even encode this one
            raise AuthFailed("token_malformed", "the bearer token is not a JWT (it has non-ASCII characters)",
                             _DID_HINT)
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise AuthFailed("token_malformed", f"the bearer token is not a JWT: {e}", _DID_HINT) from None
        alg = header.get("alg")
        if alg != "EdDSA":
            raise AuthFailed("token_algorithm", f"the token's alg is {str(alg)[:20]!r}: only EdDSA (Ed25519) tokens "
                                                "are accepted", _DID_HINT)
        did = self._subject(header, claims)
        self._check_times(claims)
        try:
            jwt.decode(token, Ed25519PublicKey.from_public_bytes(ed25519_key(did)), algorithms=["EdDSA"],
                       options={"require": ["exp"], "verify_aud": False, "verify_iss": False, "verify_sub": False},
                       leeway=self.leeway)
        except jwt.InvalidSignatureError:
            raise AuthFailed("token_signature", f"the token's signature does not verify with the key of {did}",
                             _DID_HINT) from None
        except jwt.ExpiredSignatureError:
            raise AuthFailed("token_expired", "the token has expired (exp is past)", _DID_HINT) from None
        except jwt.PyJWTError as e:  # nbf/iat ahead of the clock, or what the checks above cannot see
            raise AuthFailed("token_claims", f"the token's claims are refused: {e}", _DID_HINT) from None
        aud = claims.get("aud")
        if aud is not None:
            auds = aud if isinstance(aud, list) else [aud]
            if self.venue_did not in auds:
                raise AuthFailed("token_audience", f"the token is for {str(aud)[:200]!r}, not this venue "
                                                   f"({self.venue_did})", _DID_HINT)
        return did

    def _subject(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        sub, iss = claims.get("sub"), claims.get("iss")
        did = sub if sub is not None else iss
        if not isinstance(did, str):
            raise AuthFailed("token_issuer", "the token names no issuer: its sub (or iss) must be a did:key",
                             _DID_HINT)
        if iss is not None and sub is not None and iss != sub:
            raise AuthFailed("token_issuer", "the token's iss and sub differ: a self-issued token names one did:key",
                             _DID_HINT)
        try:
            key = ed25519_key(did) if did.startswith("did:key:") else None
        except ValueError as e:
            raise AuthFailed("token_issuer", f"the token's subject is not a usable did:key: {e}", _DID_HINT) from None
        if key is None:
            raise AuthFailed("token_issuer", f"the token's subject {did[:100]!r} is not a did:key: only self-issued "
                                             "did:key tokens are accepted", _DID_HINT)
        kid = header.get("kid")
        if kid is not None and kid not in (multibase_key(key), did, f"{did}#{multibase_key(key)}"):
            raise AuthFailed("token_issuer", "the token's kid names another key than its did:key", _DID_HINT)
        return did

    def _check_times(self, claims: dict[str, Any]) -> None:
        exp = claims.get("exp")
        if exp is None:
            raise AuthFailed("token_claims", "the token has no exp: DID tokens must expire", _DID_HINT)
        for name in ("exp", "iat", "nbf"):
            if name in claims and not _number(claims[name]):
                raise AuthFailed("token_claims", f"the token's {name} is not a number of seconds", _DID_HINT)
        if exp - self.clock() > self.max_lifetime + self.leeway:
            raise AuthFailed("token_claims", f"the token expires more than {self.max_lifetime} s from now: "
                                             "sign short-lived tokens", _DID_HINT)


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.isascii()


def caller_of_header(authorization: str | None, tokens: Tokens | None, did_auth: DidAuth | None) -> str | None:
    """The caller an ``Authorization`` header names; None for the local caller (no tokens, no credential).

    Raises:
        AuthFailed: the credential is refused (see the module doc).
    """
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    bearer = scheme.lower() == "bearer" and bool(token)
    if bearer and tokens is not None:
        caller = tokens.caller(authorization)
        if caller is not None:
            return caller
    if bearer and did_auth is not None and (tokens is None or _looks_like_jwt(token)):
        return did_auth.caller(token)  # without tokens, a bearer can only be a DID token
    if tokens is None:
        return None  # one local caller: any other header is not ours to judge
    hint = "send Authorization: Bearer <token> (the server's --tokens file lists them)"
    if did_auth is not None:
        hint += ", or a self-issued did:key JWT (the Covia SDK's Ed25519Auth)"
    raise AuthFailed("unauthorized", "missing or invalid bearer token", hint)


def authenticate(request: web.Request) -> web.Response | None:
    """Set the caller of ``request`` (:data:`ops.surfaces.common.CALLER`); the 401 reply if its credential
    is refused, None otherwise. Without tokens and without a credential, no caller is set: the local one."""
    try:
        caller = caller_of_header(request.headers.get("Authorization"), request.app.get(TOKENS),
                                  request.app.get(DID_AUTH))
    except AuthFailed as e:
        challenge = 'Bearer realm="lattice"' + ("" if e.code == "unauthorized" else ', error="invalid_token"')
        return reply(error_body(e.code, e.message, hint=e.hint), 401, {"WWW-Authenticate": challenge})
    if caller is not None:
        request[CALLER] = caller
    return None


def is_public(request: web.Request) -> bool:
    """Whether ``request`` is for the DID document, served without a token (as the Covia venue serves it).

    Decided by the handler the router matched, so no API route becomes public by its name.
    """
    return getattr(request.match_info.route, "handler", None) is did_json


def several_callers(app: web.Application) -> bool:
    """Whether ``app`` serves more than the one local caller (bearer tokens, or DID tokens)."""
    return app.get(TOKENS) is not None or app.get(DID_AUTH) is not None


def _endpoint(request: web.Request) -> str:
    """The API's base URL as the client reached it (``X-Forwarded-Proto``/``-Host``/``-Prefix``, as the venue reads
    them)."""
    proto = request.headers.get("X-Forwarded-Proto") or request.scheme
    host = request.headers.get("X-Forwarded-Host") or request.host
    prefix = (request.headers.get("X-Forwarded-Prefix") or "").rstrip("/")
    return f"{proto}://{host}{prefix}/api/v1/"


async def did_json(request: web.Request) -> web.Response:
    """``GET /.well-known/did.json``: the venue's DID document (public; ``application/did+json``)."""
    doc = request.app[RUNTIME].identity.document(_endpoint(request))
    response = reply(doc)
    response.content_type = "application/did+json"
    return response


_METHOD = {"type": "object", "required": ["id", "type", "controller", "publicKeyMultibase"],
           "properties": {"id": {"type": "string"}, "type": {"const": "Multikey"}, "controller": {"type": "string"},
                          "publicKeyMultibase": {"type": "string", "pattern": "^z6Mk"}}}
_DOC_SCHEMA = {"type": "object", "required": ["id", "@context", "verificationMethod", "authentication", "service"],
               "properties": {"id": {"type": "string", "pattern": "^did:"}, "@context": {"type": "string"},
                              "verificationMethod": {"type": "array", "items": _METHOD},
                              "authentication": {"type": "array", "items": {"type": "string"}},
                              "assertionMethod": {"type": "array", "items": {"type": "string"}},
                              "service": {"type": "array", "items": {
                                  "type": "object", "required": ["type", "serviceEndpoint"],
                                  "properties": {"type": {"type": "string"}, "serviceEndpoint": {"type": "string"}}}}}}

#: the identity routes
ROUTES = (
    Route("GET", "/.well-known/did.json", did_json, "didDocument",
          "The venue's DID document: its did:key, public key and API endpoint (no token needed)",
          responses={"200": {"description": "the DID document",
                             "content": {"application/did+json": {"schema": _DOC_SCHEMA}}}},
          tags=("server",)),
)
