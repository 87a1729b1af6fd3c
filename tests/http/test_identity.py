"""The venue identity and DID callers: status `did`, /.well-known/did.json, self-issued did:key tokens
(the Covia SDK's Ed25519Auth), and DID-qualified / leading-slash lattice paths."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covia.auth import Ed25519Auth
from ops.domain.did import b58encode, did_key, ed25519_key
from ops.surfaces.auth import Tokens
from ops.surfaces.common import RUNTIME
from ops.surfaces.identity import CODES, LEEWAY, MAX_LIFETIME

ALICE = "alice-token-0123456789abcdef"
INVOKE = "/api/v1/invoke"


def venue_did(c: TestClient) -> str:
    return c.app[RUNTIME].identity.did


def sdk_headers(auth: Ed25519Auth, c: TestClient | None = None) -> dict[str, str]:
    """What the SDK sends: its own token, ``aud`` the venue's DID when ``c`` is given."""
    h: dict[str, str] = {}
    auth.apply(h, audience=venue_did(c) if c is not None else None)
    return h


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(body: dict) -> str:
    """A rejection's code: the venue-style ``errorCode`` beside the message in ``error``."""
    assert isinstance(body["error"], str), body
    return body["errorCode"]


async def call(c: TestClient, headers: dict[str, str] | None, op: str, **inp: Any) -> tuple[int, dict]:
    r = await c.post(INVOKE, json={"operation": op, "input": inp}, headers=headers or {})
    return r.status, await r.json()


async def output(c: TestClient, headers: dict[str, str] | None, op: str, **inp: Any) -> Any:
    status, job = await call(c, headers, op, **inp)
    assert status == 200 and job["status"] == "COMPLETE", job
    return job["output"]


@pytest.fixture
async def did_client(start_app):
    """No tokens (anonymous requests act as `local`), DID tokens accepted."""
    return await start_app(accept_did_auth=True)


@pytest.fixture
async def mixed_client(start_app):
    """A bearer token for alice, and DID tokens: every request must carry one or the other."""
    return await start_app(tokens=Tokens({ALICE: "alice"}), accept_did_auth=True)


# -- the venue's identity ---------------------------------------------------------------------------

async def test_status_and_did_document_name_one_did_key(client) -> None:
    status = await (await client.get("/api/v1/status")).json()
    did = status["did"]
    assert did == venue_did(client) and did.startswith("did:key:z6Mk") and len(ed25519_key(did)) == 32
    assert status["name"] == "agent-lattice" and status["version"] and status["status"] == "ok"
    assert {"startedAt", "uptimeMs", "agents", "store"} <= set(status)  # the fields it had stay
    r = await client.get("/.well-known/did.json")
    assert r.status == 200 and r.content_type == "application/did+json"
    doc = json.loads(await r.text())
    method = doc["verificationMethod"][0]
    assert doc["id"] == did and doc["@context"] == "https://www.w3.org/ns/did/v1"
    assert method["type"] == "Multikey" and method["controller"] == did
    assert did_key(ed25519_key(method["publicKeyMultibase"])) == did
    assert doc["authentication"] == doc["assertionMethod"] == [method["id"]] and method["id"].startswith(did + "#")
    assert doc["service"] == [{"id": f"{did}#api", "type": "Covia.API.v1",
                               "serviceEndpoint": str(client.make_url("/api/v1/"))}]


async def test_the_did_document_names_the_endpoint_the_proxy_forwards(client) -> None:
    r = await client.get("/.well-known/did.json", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host":
                                                           "venue.example", "X-Forwarded-Prefix": "/lattice/"})
    doc = json.loads(await r.text())
    assert doc["service"][0]["serviceEndpoint"] == "https://venue.example/lattice/api/v1/"


async def test_each_app_has_its_own_did_unless_given_one(start_app) -> None:
    a, b = await start_app(), await start_app()
    assert venue_did(a) != venue_did(b)


async def test_the_did_document_is_public_and_status_stays_behind_the_token(mixed_client) -> None:
    c = mixed_client
    assert (await c.get("/.well-known/did.json")).status == 200  # no token: the SDK reads the audience here
    assert (await c.get("/.well-known/did.json", headers=bearer("not-a-token-at-all-000"))).status == 200
    r = await c.get("/api/v1/status")
    assert r.status == 401 and error_code(await r.json()) == "unauthorized"
    status = await (await c.get("/api/v1/status", headers=sdk_headers(Ed25519Auth.generate(), c))).json()
    assert status["did"] == venue_did(c)
    assert set(status["store"]) == {"backend"}  # several callers: no whole-store figures


async def test_status_hides_whole_store_figures_once_did_callers_exist(did_client) -> None:
    status = await (await did_client.get("/api/v1/status")).json()
    assert set(status["store"]) == {"backend"}


# -- DID callers ------------------------------------------------------------------------------------

async def test_a_did_caller_is_its_did_and_is_isolated(did_client, store) -> None:
    c = did_client
    me, other = Ed25519Auth.generate(), Ed25519Auth.generate()
    assert (await output(c, sdk_headers(me, c), "agent:create", agentId="A", state={"who": "me"}))["created"]
    await output(c, sdk_headers(me, c), "covia:write", path="w/notes", value="mine")
    assert store.ref(f"g/{me.did}/A") is not None and store.ref(f"w/{me.did}") is not None  # the DID is the caller
    for headers in (sdk_headers(other, c), None):  # another DID, the anonymous local caller
        assert (await output(c, headers, "agent:list"))["agents"] == []
        assert await output(c, headers, "covia:read", path="w/notes") == {"exists": False, "value": None}
        status, job = await call(c, headers, "agent:request", agentId="A", input="hi")
        assert job["status"] == "FAILED" or status == 404, job
    agents = (await output(c, sdk_headers(me, c), "agent:list"))["agents"]
    assert [a["agentId"] for a in agents] == ["A"]
    # a token without aud is a plain self-issued identity: the same caller
    assert (await output(c, sdk_headers(me), "covia:read", path="w/notes"))["value"] == "mine"


async def test_bearer_tokens_and_did_tokens_side_by_side(mixed_client, store) -> None:
    c = mixed_client
    me = Ed25519Auth.generate()
    await output(c, bearer(ALICE), "covia:write", path="w/who", value="alice")
    await output(c, sdk_headers(me, c), "covia:write", path="w/who", value="did")
    assert (await output(c, bearer(ALICE), "covia:read", path="w/who"))["value"] == "alice"
    assert (await output(c, sdk_headers(me, c), "covia:read", path="w/who"))["value"] == "did"
    status, body = await call(c, None, "covia:read", path="w/who")
    assert status == 401 and error_code(body) == "unauthorized" and "Ed25519Auth" in body["hint"]


async def test_did_tokens_are_refused_unless_the_operator_accepts_them(start_app, store) -> None:
    tokens = await start_app(tokens=Tokens({ALICE: "alice"}))
    status, body = await call(tokens, sdk_headers(Ed25519Auth.generate()), "covia:write", path="w/x", value=1)
    assert status == 401 and error_code(body) == "unauthorized" and "Ed25519Auth" not in body["hint"]
    open_app = await start_app()  # no tokens, DID auth off: the header is not ours to judge, the caller is local
    await output(open_app, sdk_headers(Ed25519Auth.generate()), "covia:write", path="w/x", value=1)
    assert [n for n, _ in store.refs("w/")] == ["w/local"]


async def test_other_schemes_leave_the_local_caller_without_tokens(did_client, store) -> None:
    await output(did_client, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "covia:write", path="w/x", value=1)
    assert [n for n, _ in store.refs("w/")] == ["w/local"]


async def test_mcp_and_event_streams_take_did_tokens(did_client) -> None:
    c = did_client
    me = Ed25519Auth.generate()
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    r = await c.post("/mcp", json=init, headers={**accept, **bearer(_token(exp=int(time.time()) - 3600))})
    assert r.status == 401 and error_code(await r.json()) == "token_expired"
    r = await c.post("/mcp", json=init, headers={**accept, **sdk_headers(me, c)})
    assert r.status == 200
    await output(c, sdk_headers(me, c), "agent:create", agentId="A")
    r = await c.get("/api/v1/agents/A/events", headers=sdk_headers(Ed25519Auth.generate(), c))
    assert r.status == 404  # another DID has no agent A
    r.close()


async def test_only_named_did_callers_may_collect_garbage(start_app) -> None:
    me = Ed25519Auth.generate()
    plain = await start_app(accept_did_auth=True)
    assert (await plain.post("/api/v1/admin/gc")).status == 200  # the local caller
    r = await plain.post("/api/v1/admin/gc", headers=sdk_headers(me, plain))
    assert r.status == 403 and error_code(await r.json()) == "forbidden"
    admin = await start_app(accept_did_auth=True, admins=frozenset({me.did}))
    assert (await admin.post("/api/v1/admin/gc", headers=sdk_headers(me, admin))).status == 200


# -- every refusal: 401, a stable code, nothing changed ------------------------------------------------

def _key() -> tuple[Ed25519PrivateKey, str, str]:
    key = Ed25519PrivateKey.generate()
    auth = Ed25519Auth(key)
    return key, auth.did, auth.did.removeprefix("did:key:")


def _token(key: Ed25519PrivateKey | None = None, *, alg: str = "EdDSA", headers: dict | None = None,
           **claims: Any) -> str:
    """A token signed by ``key`` (new if None) with the claims given, ``sub``/``iss`` its did:key unless given."""
    key = key or Ed25519PrivateKey.generate()
    did = Ed25519Auth(key).did
    now = int(time.time())
    payload = {"iss": did, "sub": did, "iat": now, "exp": now + 300, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": did.removeprefix("did:key:"), **(headers or {})})


def _bad_tokens(venue: str) -> list[tuple[str, str]]:
    now = int(time.time())
    key, did, mb = _key()
    other, other_did, other_mb = _key()
    good = _token(key, aud=venue)
    h, p, s = good.split(".")
    forged = _token(other, sub=did, iss=did, headers={"kid": mb})  # signed by another key, claiming my DID
    swapped = f"{h}.{_token(key, aud=venue, exp=now + 301).split('.')[1]}.{s}"  # my signature, other claims
    secp = "did:key:z" + b58encode(b"\xe7\x01" + b"\x02" * 33)
    return [
        ("token_malformed", "not-a-jwt-but-a-bearer-token"),  # without --tokens a bearer must be a DID token
        ("token_malformed", "a.b.c"),
        ("token_malformed", "eyJhbGciOiJFZERTQSJ9.bm90IGpzb24.c2ln"),  # claims not JSON
        ("token_malformed", "bm90IGpzb24.e30.c2ln"),  # header not JSON
        ("token_algorithm", jwt.encode({"sub": did, "exp": now + 300}, None, algorithm="none")),
        ("token_algorithm", jwt.encode({"sub": did, "exp": now + 300}, mb, algorithm="HS256")),
        ("token_algorithm", jwt.encode({"sub": did, "exp": now + 300}, "x" * 32, algorithm="HS256",
                                       headers={"kid": mb})),
        ("token_issuer", _token(key, sub="did:web:example.com", iss="did:web:example.com")),
        ("token_issuer", _token(key, sub="alice", iss="alice")),
        ("token_issuer", _token(key, sub=None, iss=None)),
        ("token_issuer", _token(key, iss=other_did)),  # iss and sub differ
        ("token_issuer", _token(key, headers={"kid": other_mb})),  # kid names another key
        ("token_issuer", _token(key, sub=secp, iss=secp)),  # a did:key, but not Ed25519
        ("token_issuer", _token(key, sub="did:key:z6MkNotBase58l0O", iss="did:key:z6MkNotBase58l0O")),
        ("token_signature", forged),
        ("token_signature", swapped),
        ("token_signature", f"{h}.{p}.{s[:-4]}AAAA"),
        ("token_expired", _token(key, exp=now - LEEWAY - 60)),
        ("token_claims", _token(key, exp=None)),
        ("token_claims", _token(key, exp="soon")),
        ("token_claims", _token(key, iat="yesterday")),
        ("token_claims", _token(key, exp=now + MAX_LIFETIME + 3600)),  # far too long-lived
        ("token_claims", _token(key, exp=10 ** 12)),
        ("token_claims", _token(key, iat=now + 3600)),  # issued in the future
        ("token_claims", _token(key, nbf=now + 3600)),  # not valid yet
        ("token_audience", _token(key, aud="did:key:z6MkSomeOtherVenue")),
        ("token_audience", _token(key, aud=["did:web:venue.example", "https://venue.example"])),
    ]


@pytest.mark.parametrize("case", range(27))
async def test_every_bad_did_token_is_a_401_with_its_code(did_client, store, case: int) -> None:
    cases = _bad_tokens(venue_did(did_client))
    assert len(cases) == 27
    code, token = cases[case]
    before = list(store.refs(""))
    r = await did_client.post(INVOKE, json={"operation": "covia:write", "input": {"path": "w/x", "value": 1}},
                              headers=bearer(token))
    body = await r.json()
    assert r.status == 401, (code, body)
    assert error_code(body) == code and code in CODES, body
    assert isinstance(body["error"], str) and body["error"] and body["hint"]
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="lattice", error="invalid_token"'
    assert list(store.refs("")) == before


async def test_the_good_variants_pass(did_client) -> None:
    c = did_client
    venue = venue_did(c)
    key, did, mb = _key()
    now = int(time.time())
    for token in (_token(key), _token(key, aud=venue), _token(key, aud=["https://x.example", venue]),
                  _token(key, iss=None), _token(key, sub=None), _token(key, headers={"kid": did}),
                  _token(key, headers={"kid": f"{did}#{mb}"}), _token(key, exp=now - LEEWAY + 10),  # skew
                  _token(key, iat=now + LEEWAY - 10), _token(key, nbf=now - 5, iat=None)):
        status, job = await call(c, bearer(token), "covia:write", path="w/n", value=1)
        assert status == 200 and job["status"] == "COMPLETE", (jwt.decode(token, options={"verify_signature": False}),
                                                                job)
    kid_less = jwt.encode({"sub": did, "exp": now + 60}, key, algorithm="EdDSA")
    assert (await call(c, bearer(kid_less), "covia:read", path="w/n"))[1]["output"]["value"] == 1


# -- paths: a leading /, the caller's own DID, another DID ------------------------------------------

def _ops(prefix: str) -> list[tuple[str, dict[str, Any], Any]]:
    """Every covia op with a path under ``prefix`` (``""``, ``"/"`` or ``"<DID>/"``) and its expected output."""
    return [
        ("covia:write", {"path": f"{prefix}w/doc", "value": {"a": [1]}}, {"written": True}),
        ("covia:append", {"path": f"{prefix}w/doc/a", "value": 2}, {"appended": True}),
        ("covia:read", {"path": f"{prefix}w/doc"}, {"exists": True, "value": {"a": [1, 2]}}),
        ("covia:list", {"path": f"{prefix}w/doc"}, {"exists": True, "type": "map", "count": 1, "keys": ["a"],
                                                    "offset": 0}),
        ("covia:slice", {"path": f"{prefix}w/doc/a"}, {"exists": True, "type": "list", "count": 2, "offset": 0,
                                                       "values": [1, 2]}),
        ("covia:delete", {"path": f"{prefix}w/doc"}, {"deleted": True}),
        ("covia:read", {"path": f"{prefix}w/doc"}, {"exists": False, "value": None}),
    ]


def _matches(got: Any, expected: dict[str, Any]) -> bool:
    return isinstance(got, dict) and all(got.get(k) == v for k, v in expected.items())  # extra fields allowed


@pytest.mark.parametrize("who", ["did", "token", "local"])
@pytest.mark.parametrize("form", ["slash", "own-did"])
async def test_every_covia_op_takes_a_leading_slash_and_the_callers_own_did(start_app, who: str,
                                                                             form: str) -> None:
    me = Ed25519Auth.generate()
    if who == "local":
        c = await start_app(accept_did_auth=True)
        headers: dict[str, str] = {}
        mine = f"{venue_did(c)}:u:local"
    else:
        c = await start_app(tokens=Tokens({ALICE: "alice"}), accept_did_auth=True)
        headers = sdk_headers(me, c) if who == "did" else bearer(ALICE)
        mine = me.did if who == "did" else f"{venue_did(c)}:u:alice"
    for op, inp, expected in _ops("/" if form == "slash" else f"{mine}/"):
        got = await output(c, headers, op, **inp)
        assert _matches(got, expected), (op, inp, got)


async def test_at_reads_take_both_forms(did_client) -> None:
    c = did_client
    me = Ed25519Auth.generate()
    h = sdk_headers(me, c)
    await output(c, h, "agent:create", agentId="A", state={"v": 1})
    await output(c, h, "agent:update", agentId="A", state={"v": 2})
    for path in ("g/A/state/v", "/g/A/state/v", f"{me.did}/g/A/state/v"):
        assert (await output(c, h, "covia:read", path=path, at=0))["value"] == 1, path
        assert (await output(c, h, "covia:read", path=path))["value"] == 2, path


@pytest.mark.parametrize("op", ["covia:read", "covia:list", "covia:slice", "covia:write", "covia:append",
                                "covia:delete"])
async def test_another_dids_paths_are_not_found_whether_or_not_they_exist(did_client, store, op: str) -> None:
    c = did_client
    me, other = Ed25519Auth.generate(), Ed25519Auth.generate()
    await output(c, sdk_headers(other, c), "covia:write", path="w/secret", value="x")
    before = list(store.refs(""))
    answers = []
    for path in (f"{other.did}/w/secret", f"{other.did}/w/nothing", f"{Ed25519Auth.generate().did}/w/secret",
                 f"{venue_did(c)}/w/secret", f"{venue_did(c)}:u:local/w/secret"):
        inp: dict[str, Any] = {"path": path}
        if op in ("covia:write", "covia:append"):
            inp["value"] = 1
        status, body = await call(c, sdk_headers(me, c), op, **inp)
        assert status == 404 and error_code(body) == "not_found", body
        answers.append(json.dumps(body).replace(path, "<path>"))
    assert len(set(answers)) == 1  # one answer: nothing tells which exist
    assert list(store.refs("")) == before


@pytest.mark.parametrize("path, code", [
    ("//w/x", "invalid_path"), ("did:key:z6Mk!/w/x", "invalid_path"), ("did:Key:abc/w/x", "invalid_path"),
    ("did:/w/x", "invalid_path"), ("/", "invalid_path"), ("/q/x", "invalid_path"), ("/w//x", "invalid_path"),
])
async def test_malformed_paths_are_invalid_path(did_client, store, path: str, code: str) -> None:
    me = Ed25519Auth.generate()
    before = list(store.refs(""))
    for op in ("covia:read", "covia:write"):
        inp: dict[str, Any] = {"path": path, **({"value": 1} if op == "covia:write" else {})}
        status, body = await call(did_client, sdk_headers(me, did_client), op, **inp)
        assert status == 400 and error_code(body) == code, body
    assert list(store.refs("")) == before


async def test_the_own_did_alone_or_with_a_doubled_slash_is_invalid_path(did_client) -> None:
    me = Ed25519Auth.generate()
    h = sdk_headers(me, did_client)
    for path in (me.did, f"{me.did}//w/x", f"{me.did}/"):
        status, body = await call(did_client, h, "covia:read", path=path)
        assert status == 400 and error_code(body) == "invalid_path", (path, body)


async def test_a_config_path_may_start_with_a_slash(client) -> None:
    await output(client, None, "covia:write", path="/w/cfg", value={"model": {"provider": "echo"}})
    assert (await output(client, None, "agent:create", agentId="E", config="/w/cfg"))["created"]
    assert (await output(client, None, "agent:request", agentId="E", input="hi", wait=True))["output"] == "hi"
    status, body = await call(client, None, "agent:create", agentId="F", config="/w//cfg")
    assert status == 400 and error_code(body) == "invalid_path" and body["path"] == "$.input.config"


async def test_the_agents_covia_tools_take_both_forms(did_client) -> None:
    c = did_client
    me = Ed25519Auth.generate()
    other = Ed25519Auth.generate()
    h = sdk_headers(me, c)
    rules = [  # the first rule whose `when` is in the last message: the error text holds a DID, so it goes first
        {"when": "error: nothing reachable", "toolCalls": [{"name": "complete_task", "arguments": {"output": "done"}}]},
        {"when": "start", "toolCalls": [{"name": "covia_write", "arguments": {"path": "/w/n", "value": 7}}]},
        {"when": "written", "toolCalls": [{"name": "covia_read", "arguments": {"path": f"{me.did}/w/n"}}]},
        {"when": "7", "toolCalls": [{"name": "covia_list", "arguments": {"path": f"{other.did}/w"}}]},
    ]
    await output(c, h, "agent:create", agentId="T", config={"model": {"provider": "scripted", "rules": rules}})
    job = await output(c, h, "agent:request", agentId="T", input="start", wait=True)
    assert job in ("done", {"output": "done"}) or job.get("output") == "done", job
    assert (await output(c, h, "covia:read", path="w/n"))["value"] == 7
    record = json.dumps((await output(c, h, "covia:read", path="g/T"))["value"])
    assert "error: nothing reachable at" in record  # the other DID's listing was refused as not found


# -- the verifier alone: whatever arrives, an identity or AuthFailed ---------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ops.surfaces.identity import AuthFailed, DidAuth  # noqa: E402

_KEY = Ed25519PrivateKey.generate()
_claim = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                   st.text(max_size=20), st.lists(st.text(max_size=5), max_size=2), st.just(Ed25519Auth(_KEY).did))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.text(alphabet="abcXYZ019-_.", max_size=80),
                 st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "kid"]), _claim)))
def test_the_verifier_answers_an_identity_or_a_refusal(token_or_claims: Any) -> None:
    verifier = DidAuth("did:key:z6MkVenue")
    if isinstance(token_or_claims, dict):  # signed by hand: PyJWT's encoder refuses some of these claims
        def part(v: Any) -> str:
            return base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()
        signed = f"{part({'alg': 'EdDSA', 'typ': 'JWT'})}.{part(token_or_claims)}"
        sig = base64.urlsafe_b64encode(_KEY.sign(signed.encode())).rstrip(b"=").decode()
        token_or_claims = f"{signed}.{sig}"
    try:
        did = verifier.caller(token_or_claims)
    except AuthFailed as e:
        assert e.code in CODES and e.message
    else:
        assert did == Ed25519Auth(_KEY).did
