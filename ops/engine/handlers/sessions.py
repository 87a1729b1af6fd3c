"""Handlers of the session operations: ``agent:chat``, the venue's session family, questions
against a session (``agent:query``, ``agent:summarise``) and ``agent:forkSession``.

A chat is a message on a session's pending (:class:`ops.domain.events.ChatQueued`) and a job
the agent's next turn on that session completes (:mod:`ops.engine.runs`); every edit is an
event on the agent's chain. ``agent:query`` and ``agent:summarise`` call the model on a
snapshot and commit nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from lattice.commits import Commit
from lattice.errors import LatticeError
from lattice.nodes import Tx, map_get, map_keys, seq_len, seq_plain

from ...domain import agent as A
from ...domain import decide
from ...domain import jobs as J
from ...domain import session_ops as SO
from ...domain import sessions as S
from ...domain.agent import check_config
from ...domain.cycle import build_context
from ...domain.errors import OpError, Rejected
from ...domain.models import LlmError, LlmRequest
from ...domain.refs import agent_ref, job_ref
from ..context import Engine
from ..unit import Unit
from .agents import session_id

__all__ = ["HANDLERS", "SUMMARY_PROMPT", "READ_MAX_CHARS"]

log = logging.getLogger("lattice.runtime")

#: the question ``agent:summarise`` asks the model after the conversation
SUMMARY_PROMPT = ("Summarise the conversation so far in a few sentences: the facts, the decisions and the open "
                  "questions. Answer with the summary only.")
#: ``agent:sessionRead`` bound on the messages' JSON when ``maxChars`` is not given
READ_MAX_CHARS = 1 << 20


async def chat(engine: Engine, caller: str, inp: SO.ChatInput, job: dict) -> dict:
    if inp.message is None:
        raise Rejected("invalid_input", "`message` must not be null - at `$.input.message`", path="$.input.message",
                       hint="send a string or any JSON value")
    engine.tx().put_value(inp.message)  # a value the lattice can hold, whatever happens next (InvalidValue: refused)
    jid = job["jobId"]
    sid = session_id(inp.sessionId)
    new_id = engine.job_ids(engine.clock()) if sid is None else ""
    job = {**job, "agentId": inp.agentId, "sessionId": sid or new_id}

    def fn(u: Unit) -> None:
        rec = u.read(agent_ref(caller, inp.agentId))
        event = decide.chat(u.tx, rec, inp.agentId, sid, new_id, jid, inp.message, engine.limits.max_queued)
        engine.commit_event(u, caller, inp.agentId, rec, event)
        u.follow(job_ref(caller, jid), agent_ref(caller, inp.agentId))  # the job is folded into that commit
    await engine.units.run(caller, fn)
    return await engine.wait(caller, engine.jobs.get(caller, jid, inp.agentId), inp.wait)


def _at(engine: Engine, tx: Tx, caller: str, aid: str, at: Any) -> tuple[bytes, Commit, dict[str, Any]]:
    """``(commit id, commit, opened record)`` of the agent at its head or version ``at``.

    Raises:
        OpError: ``not_found`` (no such agent or version). Rejected: a malformed ``at``.
    """
    d, c = engine.head_commit(tx, caller, aid) if at is None else engine.at_version(tx, caller, aid, at)
    return d, c, A.opened(tx, tx.load_root(c.root))


async def sessions(engine: Engine, caller: str, inp: SO.SessionsInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        rec = engine.agent(u, caller, inp.agentId)
        all_ = rec.get("sessions") or {}
        ids = map_keys(all_)[::-1]  # newest first: session ids sort by the time they were minted
        page = [S.summary_of(sid, map_get(u.tx, all_, sid)) for sid in ids[inp.offset:inp.offset + inp.limit]]
        return {"agentId": inp.agentId, "sessions": page, "count": len(page), "total": len(ids), "offset": inp.offset}
    return await engine.sync(caller, job, fn)


def _latest(tx: Tx, rec: dict[str, Any]) -> str | None:
    """The most recently active session (ties: the newest)."""
    all_ = rec.get("sessions") or {}
    best = None
    for sid in map_keys(all_):
        key = (map_get(tx, all_, sid)["meta"]["lastActivity"], sid)
        best = key if best is None or key > best else best
    return None if best is None else best[1]


def _archive(engine: Engine, tx: Tx, caller: str, aid: str, meta: dict[str, Any],
             arch: dict[str, Any]) -> dict[str, Any] | None:
    """The session holding an archive's turns: at the version it names; once that version's id
    changed (a prune rewrites the ids of the versions it keeps, not their seq), at the same seq of
    the agent's chain if the session there holds those turns. None: that version is gone."""
    sid = arch.get("sessionId", meta["id"])
    lo, hi = arch["turns"]
    try:
        return S.get(tx, engine.opened_at(tx, arch["id"]), sid)
    except (LatticeError, ValueError):
        pass
    try:
        _, c = engine.at_version(tx, caller, aid, arch["seq"])
    except OpError:
        return None
    session = S.get(tx, A.opened(tx, tx.load_root(c.root)), sid)
    if session is None or not (session["meta"].get("compactedTurns", 0) <= lo and session["meta"]["turnCount"] >= hi):
        return None
    return session


def _archived(engine: Engine, tx: Tx, caller: str, aid: str, meta: dict[str, Any], depth: int) -> list[dict[str, Any]]:
    """The turns of the last ``depth`` compactions, oldest first, read at the versions that hold
    them (``missing``: that version was pruned and collected)."""
    out = []
    for arch in list(meta.get("archives") or [])[-depth:]:
        lo, hi = arch["turns"]
        entry: dict[str, Any] = {"turns": [lo, hi], "version": {"seq": arch["seq"], "id": arch["id"]}}
        session = _archive(engine, tx, caller, aid, meta, arch)
        if session is None:
            entry["missing"] = True
        else:
            history = session["history"]
            msgs = seq_plain(tx, history, S.split_index(tx, history, lo))
            entry["messages"] = [m for m in msgs if lo <= m.get("turn", -1) < hi]
        out.append(entry)
    return out


async def session_read(engine: Engine, caller: str, inp: SO.SessionReadInput, job: dict) -> dict:
    def fn(u: Unit) -> dict:
        _, _, rec = _at(engine, u.tx, caller, inp.agentId, inp.at)
        sid = session_id(inp.sessionId) or _latest(u.tx, rec)
        session = None if sid is None else S.get(u.tx, rec, sid)
        if session is None:
            return {"found": False, "agentId": inp.agentId}
        meta = session["meta"]
        msgs, truncated = S.read_messages(u.tx, session["history"], inp.maxTurns,
                                          READ_MAX_CHARS if inp.maxChars is None else inp.maxChars)
        out = {"found": True, "agentId": inp.agentId, "sessionId": sid, "title": meta.get("title", ""),
               "created": meta["started"], "updated": meta["lastActivity"], "messages": msgs,
               "turnCount": meta["turnCount"], "compactedTurns": meta.get("compactedTurns", 0),
               "pending": seq_len(session["pending"]), "truncated": truncated}
        if inp.archiveDepth:
            out["archived"] = _archived(engine, u.tx, caller, inp.agentId, meta, inp.archiveDepth)
        return out
    return await engine.sync(caller, job, fn)


async def rename_session(engine: Engine, caller: str, inp: SO.RenameSessionInput, job: dict) -> dict:
    sid, title = session_id(inp.sessionId), inp.title or ""

    def fn(u: Unit) -> dict:
        rec = u.read(agent_ref(caller, inp.agentId))
        event = decide.rename_session(u.tx, rec, inp.agentId, sid, title)
        if event is not None:
            engine.commit_event(u, caller, inp.agentId, rec, event)
        return {"agentId": inp.agentId, "sessionId": sid, "title": title}
    return await engine.sync(caller, job, fn)


async def delete_session(engine: Engine, caller: str, inp: SO.SessionInput, job: dict) -> dict:
    sid = session_id(inp.sessionId)

    def fn(u: Unit) -> dict:
        rec = u.read(agent_ref(caller, inp.agentId))
        event = decide.delete_session(u.tx, rec, inp.agentId, sid)
        for e in seq_plain(u.tx, S.get(u.tx, rec, sid)["pending"]):
            jr = u.read(job_ref(caller, e["id"]), inp.agentId) if e.get("op") == "agent:chat" else None
            done = None if jr is None else J.cancel(jr, u.ts, f"session {sid} deleted")
            if done is not None:
                u.write(job_ref(caller, e["id"]), done, "job:cancel")
        engine.commit_event(u, caller, inp.agentId, rec, event)
        return {"agentId": inp.agentId, "sessionId": sid, "deleted": True}
    return await engine.sync(caller, job, fn)


async def compact_session(engine: Engine, caller: str, inp: SO.CompactSessionInput, job: dict) -> dict:
    sid = session_id(inp.sessionId)

    def fn(u: Unit) -> dict:
        name = agent_ref(caller, inp.agentId)
        rec = u.read(name)
        d, c = u.head(name)
        event = decide.compact_session(u.tx, rec, inp.agentId, sid, inp.summary, inp.keepTurns,
                                       "" if d is None else d.hex(), 0 if c is None else c.seq)
        if event is None:
            live = S.live_turns(S.get(u.tx, rec, sid)["meta"])
            return {"agentId": inp.agentId, "sessionId": sid, "compacted": False, "archivedTurns": 0, "turnCount": live}
        new = engine.commit_event(u, caller, inp.agentId, rec, event)
        arch = S.get(u.tx, new, sid)["meta"]["archives"][-1]
        return {"agentId": inp.agentId, "sessionId": sid, "compacted": True,
                "archivedTurns": arch["turns"][1] - arch["turns"][0], "turnCount": inp.keepTurns,
                "archivedAt": {"seq": arch["seq"], "id": arch["id"]}}
    return await engine.sync(caller, job, fn)


async def reload_context(engine: Engine, caller: str, inp: SO.SessionInput, job: dict) -> dict:
    """The venue reloads a session's cached context frames. Here a turn's context is rebuilt from the lattice on
    every run (config, the session's history), so there is nothing stale to reload: the session is checked and
    ``reloaded: true, frames: 0`` answered; ``agent:context`` with ``sessionId`` shows the next turn's input.

    Raises:
        OpError: ``not_found`` (no such agent or session).
    """
    sid = session_id(inp.sessionId)

    def fn(u: Unit) -> dict:
        rec = engine.agent(u, caller, inp.agentId)
        if sid is None or S.get(u.tx, rec, sid) is None:
            raise OpError("not_found", f"agent {inp.agentId!r} has no session {inp.sessionId!r}",
                          path="$.input.sessionId", hint="agent:sessions lists the agent's sessions")
        return {"agentId": inp.agentId, "sessionId": sid, "reloaded": True, "frames": 0}
    return await engine.sync(caller, job, fn)


def _snapshot_context(tx: Tx, aid: str, sid: str | None, rec: dict[str, Any],
                      question: Any) -> tuple[Any, list[dict[str, Any]]]:
    """``(model ref, messages)``: the agent's context for a turn on session ``sid`` (or on its own
    conversation) whose new message is ``question`` (any JSON, rendered as text).

    Raises:
        OpError: ``not_found`` (no session ``sid``), ``invalid_config``.
    """
    if sid is not None:
        decide.session_of(tx, rec, aid, sid)
        work = A.Work(None, None, [], [], session=sid, pending=[{"id": "(query)", "message": question}])
    else:
        work = A.Work("(query)", {"input": question}, [], [])
    try:
        cfg, prefix, new, _ = build_context(tx, rec, work)
    except msgspec.ValidationError as e:
        raise OpError("invalid_config", f"agent config: {e}") from None
    return cfg.model, prefix + new


async def _ask(engine: Engine, caller: str, aid: str, sid: str | None, at: Any, question: Any,
               ) -> tuple[Any, dict[str, Any], int]:
    """Ask the model ``question`` against a snapshot (no tools, nothing written):
    ``(reply content, version {seq, id}, how many conversation messages it was given)``.

    Raises:
        OpError: as :func:`_at` and :func:`_snapshot_context`; the model's failure
            (``llm_error``, ``llm_timeout``, ``llm_config``).
    """
    tx = engine.tx()
    d, c, rec = _at(engine, tx, caller, aid, at)
    model, messages = _snapshot_context(tx, aid, sid, rec, question)
    try:
        reply = await engine.adapter(model).complete(LlmRequest(model=msgspec.to_builtins(model), messages=messages))
    except LlmError as e:
        raise OpError(e.code, e.message) from None
    except Exception as e:  # an adapter bug: never let its text (which could hold a credential) out
        log.error("LLM adapter for a question to %s/%s raised %s", caller, aid, type(e).__name__)
        raise OpError("llm_error", f"the {msgspec.to_builtins(model).get('provider')} adapter failed "
                                   f"({type(e).__name__})") from None
    system = 1 if check_config(rec["state"]["config"]).systemPrompt else 0
    return reply.content, {"seq": c.seq, "id": d.hex()}, len(messages) - system - 1


def _finish(engine: Engine, caller: str, job: dict, output: dict[str, Any]) -> dict:
    done = J.finish(job, J.COMPLETE, engine.clock(), output=output)
    engine.jobs.remember(caller, done)
    return done


async def query(engine: Engine, caller: str, inp: SO.QueryInput, job: dict) -> dict:
    if inp.question is None:
        raise Rejected("invalid_input", "`question` must not be null - at `$.input.question`",
                       path="$.input.question", hint="ask with a string or any JSON value")
    engine.tx().put_value(inp.question)  # a value the lattice can hold, as every input (InvalidValue: refused)
    sid = session_id(inp.sessionId)
    response, version, _ = await _ask(engine, caller, inp.agentId, sid, inp.at, inp.question)
    return _finish(engine, caller, job, {"agentId": inp.agentId, "sessionId": sid, "response": response,
                                         "version": version})


async def summarise(engine: Engine, caller: str, inp: SO.SummariseInput, job: dict) -> dict:
    sid = session_id(inp.sessionId)
    summary, version, n = await _ask(engine, caller, inp.agentId, sid, inp.at, SUMMARY_PROMPT)
    return _finish(engine, caller, job, {"agentId": inp.agentId, "sessionId": sid, "summary": summary,
                                         "messages": n, "version": version})


async def fork_session(engine: Engine, caller: str, inp: SO.ForkSessionInput, job: dict) -> dict:
    sid = session_id(inp.sessionId)
    new_id = engine.job_ids(engine.clock())

    def fn(u: Unit) -> dict:
        source, c, src = _at(engine, u.tx, caller, inp.agentId, inp.at)
        rec = u.read(agent_ref(caller, inp.agentId))
        event = decide.fork_session(u.tx, src, rec, inp.agentId, sid, new_id, source.hex(), inp.at, inp.title)
        engine.commit_event(u, caller, inp.agentId, rec, event, load=lambda h: src)
        return {"agentId": inp.agentId, "sessionId": new_id,
                "forkedFrom": {"sessionId": sid, "id": source.hex(), "seq": c.seq}}
    return await engine.sync(caller, job, fn)


HANDLERS = {"agent:chat": chat, "agent:sessions": sessions, "agent:sessionRead": session_read,
            "agent:renameSession": rename_session, "agent:deleteSession": delete_session,
            "agent:compactSession": compact_session, "agent:reloadContext": reload_context, "agent:query": query,
            "agent:summarise": summarise, "agent:forkSession": fork_session}
