"""The official Covia SDK with authentication, against real `lattice serve` processes: bearer tokens (the SDK's
``BearerAuth``, `lattice serve --tokens`) and self-issued Ed25519 JWTs (the SDK's ``Ed25519Auth``, accepted with
:data:`~tests.covia.conftest.DID_AUTH_FLAG`), where the caller's own ``did:key`` prefixes its paths.

Each caller sees and touches only its own agents, sessions, workspace and jobs; another caller's are ``not_found``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from covia import Grid, GridError, JobNotFoundError, JobStatus, Namespace, Venue, did_url
from covia.auth import Auth, BearerAuth, Ed25519Auth
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.covia.conftest import ALICE, BOB
from tests.covia.helpers import ANSWER, SCRIPTED, code_of, uid


# ---------------------------------------------------------------- bearer tokens


@pytest.fixture
def alice(tokens_url: str) -> Iterator[Venue]:
    with Grid.connect(tokens_url, auth=BearerAuth(ALICE), timeout=30) as v:
        yield v


@pytest.fixture
def bob(tokens_url: str) -> Iterator[Venue]:
    with Grid.connect(tokens_url, auth=BearerAuth(BOB), timeout=30) as v:
        yield v


@pytest.mark.parametrize("auth", [None, BearerAuth("not-a-token-0123456789abcdef"), BearerAuth(ALICE + "x")],
                         ids=["none", "unknown", "altered"])
def test_tokens_refuse_a_caller_without_a_valid_token(tokens_url: str, auth: Auth | None) -> None:
    with Grid.connect(tokens_url, auth=auth) as v:
        for call in (lambda: v.agents.list(), lambda: v.workspace.read("w/x"),
                     lambda: v.agents.create(uid("X"), config=SCRIPTED), lambda: v.list_jobs()):
            with pytest.raises(GridError) as e:
                call()
            assert (e.value.status_code, code_of(e.value)) == (401, "unauthorized")


def test_tokens_give_each_caller_its_own_agents_workspace_and_jobs(alice: Venue, bob: Venue) -> None:
    name = uid("Bot")
    for v in (alice, bob):
        assert v.agents.create(name, config=SCRIPTED).created is True  # each caller has its own `name`
    assert alice.agents.request(name, {"question": "overdue?"}).model_extra["answer"] == ANSWER["answer"]
    assert (alice.agents.info(name).timelineLength, bob.agents.info(name).timelineLength) == (1, 0)

    chat = alice.agent(name).chat_session()
    assert chat.send("weather?").response == "Sunny all day."
    assert [s.sessionId for s in alice.agents.sessions(name).sessions] == [chat.session_id]
    assert bob.agents.sessions(name).sessions == []
    assert bob.agents.read_session(name, chat.session_id).found is False

    path = f"/w/private/{uid('note')}"
    alice.workspace.write(path, {"only": "alice"})
    assert bob.workspace.read(path).exists is False
    assert bob.workspace.write(path, {"only": "bob"}).existed is False
    assert alice.workspace.read(path).value == {"only": "alice"}

    job = alice.invoke("v/ops/agent/request", {"agentId": name, "input": {"question": "overdue?"}})
    assert job.result(timeout=10)["answer"] == ANSWER["answer"]
    assert job.id in alice.list_jobs() and job.id not in bob.list_jobs()
    for call in (lambda: bob.get_job(job.id), lambda: bob.cancel_job(job.id)):
        with pytest.raises(JobNotFoundError):
            call()
    assert alice.get_job(job.id).status == JobStatus.COMPLETE


# ---------------------------------------------------------------- Ed25519 identities (did:key)


@pytest.fixture
def did_alice(didauth_url: str) -> Iterator[tuple[Venue, Ed25519Auth]]:
    auth = Ed25519Auth.generate()  # no audience: the SDK binds `aud` to the DID the venue reports
    with Grid.connect(didauth_url, auth=auth, timeout=30) as v:
        yield v, auth


@pytest.fixture
def did_bob(didauth_url: str) -> Iterator[tuple[Venue, Ed25519Auth]]:
    auth = Ed25519Auth.generate()
    with Grid.connect(didauth_url, auth=auth, timeout=30) as v:
        yield v, auth


def test_the_venue_identity_is_public_and_stable(didauth_url: str) -> None:
    with Grid.connect(didauth_url) as anonymous:
        status = anonymous.status()
        assert status.did and status.did.startswith("did:")
        assert anonymous.did_document().id == status.did
    with Grid.connect(didauth_url) as again:
        assert again.status().did == status.did


def test_own_did_prefix_names_the_callers_namespace(did_alice: tuple[Venue, Ed25519Auth]) -> None:
    venue, auth = did_alice
    ws = venue.workspace
    key = uid("k")
    bare, full = f"/w/notes/{key}", did_url(auth.did, Namespace.WORKSPACE, "notes", key)
    assert full == f"{auth.did}/w/notes/{key}"
    assert ws.write(bare, {"marker": key}).existed is False
    assert ws.read(full).value == ws.read(bare).value == {"marker": key}
    assert ws.write(full, {"marker": "via the did"}).existed is True
    assert ws.read(bare.lstrip("/")).value == {"marker": "via the did"}
    log = f"{auth.did}/w/notes/{key}-log"
    assert (ws.append(log, "a").index, ws.append(f"/w/notes/{key}-log", "b").index) == (0, 1)
    assert ws.slice(log, offset=0, limit=10).values == ["a", "b"]
    assert ws.list(f"{auth.did}/w/notes").keys == sorted([key, f"{key}-log"])  # a new identity: only these
    assert ws.count(f"{auth.did}/w/notes").count == 2
    assert ws.delete(full).deleted is True and ws.read(bare).exists is False

    name = uid("Bot")
    assert venue.agents.create(name, config=SCRIPTED).created is True
    assert venue.agents.request(name, {"question": "overdue?"}).model_extra["answer"] == ANSWER["answer"]
    assert ws.read(f"{auth.did}/g/{name}/status").value == "SLEEPING"
    assert [a.agentId for a in venue.agents.list().agents] == [name]


def test_another_callers_did_is_not_found(did_alice: tuple[Venue, Ed25519Auth],
                                          did_bob: tuple[Venue, Ed25519Auth]) -> None:
    (alice, a_auth), (bob, _) = did_alice, did_bob
    key = uid("secret")
    alice.workspace.write(f"/w/{key}", {"secret": "hush"})
    theirs = f"{a_auth.did}/w/{key}"
    for call in (lambda: bob.workspace.read(theirs), lambda: bob.workspace.write(theirs, "mine now"),
                 lambda: bob.workspace.append(f"{a_auth.did}/w/{key}-log", 1), lambda: bob.workspace.delete(theirs),
                 lambda: bob.workspace.list(f"{a_auth.did}/w"), lambda: bob.workspace.count(f"{a_auth.did}/w")):
        with pytest.raises(GridError) as e:
            call()
        assert code_of(e.value) == "not_found", e.value
    assert alice.workspace.read(theirs).value == {"secret": "hush"}
    assert alice.workspace.read(f"/w/{key}-log").exists is False

    name = uid("Bot")
    alice.agents.create(name, config=SCRIPTED)
    assert name not in [a.agentId for a in bob.agents.list().agents]
    with pytest.raises(GridError) as e:
        bob.agents.info(name)
    assert e.value.status_code == 404
    job = alice.invoke("v/ops/agent/request", {"agentId": name, "input": {"question": "overdue?"}})
    assert job.result(timeout=10)["answer"] == ANSWER["answer"]
    assert job.id not in bob.list_jobs()
    with pytest.raises(JobNotFoundError):
        bob.get_job(job.id)


class _Impostor(Auth):
    """Claims ``did`` (its ``iss``, ``sub`` and ``kid``) but signs with another key."""

    def __init__(self, did: str, audience: str, key: Ed25519PrivateKey) -> None:
        self.did, self.audience, self.key = did, audience, key

    def apply(self, headers: dict[str, str], audience: str | None = None) -> None:
        now = int(time.time())
        claims = {"iss": self.did, "sub": self.did, "iat": now, "exp": now + 300, "aud": self.audience}
        token = jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.did.removeprefix("did:key:")})
        headers["Authorization"] = f"Bearer {token}"


@pytest.mark.parametrize("make, code", [
    pytest.param(lambda venue_did: Ed25519Auth.generate(audience=venue_did, token_lifetime=-120), "token_expired",
                 id="expired"),
    pytest.param(lambda venue_did: Ed25519Auth.generate(audience="did:web:elsewhere.example"), "token_audience",
                 id="other-audience"),
    pytest.param(lambda venue_did: _Impostor(Ed25519Auth.generate().did, venue_did, Ed25519PrivateKey.generate()),
                 "token_signature", id="forged-signature"),
    pytest.param(lambda venue_did: BearerAuth("not.a.jwt"), "token_malformed", id="not-a-jwt"),
])
def test_did_auth_refuses_a_bad_token(didauth_url: str, make, code: str) -> None:
    with Grid.connect(didauth_url) as anonymous:
        venue_did = anonymous.status().did
    with Grid.connect(didauth_url, auth=make(venue_did)) as v:
        for call in (lambda: v.workspace.write("/w/x", 1), lambda: v.agents.list()):
            with pytest.raises(GridError) as e:
                call()
            assert (e.value.status_code, code_of(e.value)) == (401, code)
