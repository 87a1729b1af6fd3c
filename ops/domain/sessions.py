"""Pure session transitions: sessions live inside the agent record, at venue paths.

A session (Covia venue, AGENT_SESSIONS.md) is a conversation of an agent with a
caller: its own history, and the messages waiting for the agent's next turn on it.
The agent record holds them at ``g/<agentId>/sessions/<sid>/...``::

    sessions: {<sid>: {meta:    {id, parties, title, status, started, lastActivity, turnCount,
                                 compactedTurns?, archives?},
                       history: [<message>],      # the live transcript (model messages)
                       pending: [<entry>]}}       # waiting for the agent's next turn on it
    sessionQueue: [<sid>]                          # sessions with pending entries, oldest first

Both keys are added to a record only when its first session is created, so an agent
that never had a session stores exactly what it stored before sessions existed.

* a pending entry: ``{id, op, message, caller, ts}``; ``id`` is the message's job id
  (``agent:chat`` or ``agent:message``), ``message`` any JSON value.
* a history message: the model's shape ``{role, content, toolCalls?, toolCallId?, name?}``
  plus ``turn`` (the turn it belongs to, from 0) and ``ts``; a user message also has
  ``id`` and ``caller`` (from its pending entry) or ``taskId`` (a task's input).
* a turn: one run on the session: the batch of pending messages it took (and the task
  bound to the session, if it took one), then the model's reply and tool exchanges.
* compaction replaces the oldest turns of the live history with one summary message
  ``{role: "system", content: <summary>, summary: true, turns: [lo, hi], ts}``; the
  replaced turns stay readable at the versions before (``meta.archives`` names them).

No clock, ids or I/O here: times and ids are passed in; collections may be lazy handles
(the ``map_*``/``seq_*`` helpers take either form).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from lattice.nodes import Tx, map_delete, map_get, map_set, seq_append, seq_get, seq_len, seq_plain

__all__ = ["ACTIVE", "MODEL_KEYS", "normalize_id", "get", "new_session", "open_session", "enqueue", "pending_count",
           "chat_ids", "take_turn", "drop_pending", "clear_pending", "rename", "delete", "split_index", "compact",
           "for_fork", "copy_session", "window", "summary_text", "live_turns", "read_messages", "summary_of"]

ACTIVE = "active"
#: the keys of a history message the model sees (the rest is bookkeeping)
MODEL_KEYS = ("role", "content", "toolCalls", "toolCallId", "name")

_ID = re.compile(r"(0x)?[0-9a-fA-F]{32}")


def normalize_id(text: Any) -> str | None:
    """The canonical form of a session id (``0x`` + 32 lowercase hex digits), or None if malformed.

    >>> normalize_id("0190AB00000000000000000000000001")
    '0x0190ab00000000000000000000000001'
    """
    if not isinstance(text, str) or not _ID.fullmatch(text):
        return None
    return "0x" + text[-32:].lower()


def get(tx: Tx, rec: dict[str, Any], sid: str) -> dict[str, Any] | None:
    """The opened session ``sid`` of an agent record, or None."""
    sessions = rec.get("sessions")
    if not sessions:
        return None
    try:
        return map_get(tx, sessions, sid)
    except KeyError:
        return None


def _existing(tx: Tx, rec: dict[str, Any], sid: str) -> dict[str, Any]:
    """The opened session ``sid``. Raises KeyError when there is no such session."""
    session = get(tx, rec, sid)
    if session is None:
        raise KeyError(sid)
    return session


def _put(tx: Tx, rec: dict[str, Any], sid: str, session: dict[str, Any]) -> dict[str, Any]:
    return {**rec, "sessions": map_set(tx, rec.get("sessions") or {}, sid, session)}


def _queue(rec: dict[str, Any], sid: str, session: dict[str, Any]) -> list[str]:
    """The session queue with ``sid`` in its place: kept where it was while it has pending
    entries it had before, appended when it newly has some, removed when it has none."""
    queue = list(rec.get("sessionQueue") or [])
    if not seq_len(session["pending"]):
        return [q for q in queue if q != sid]
    if sid not in queue:
        queue.append(sid)
    return queue


def new_session(sid: str, caller: str, ts: int, title: str = "") -> dict[str, Any]:
    """A new session record (no turns, nothing pending)."""
    return {"meta": {"id": sid, "parties": [caller], "title": title, "status": ACTIVE, "started": ts,
                     "lastActivity": ts, "turnCount": 0},
            "history": [], "pending": []}


def open_session(tx: Tx, rec: dict[str, Any], sid: str, caller: str, ts: int, title: str = "") -> dict[str, Any]:
    """The record with a new session ``sid`` (the first one adds ``sessions`` and ``sessionQueue``)."""
    rec = _put(tx, rec, sid, new_session(sid, caller, ts, title))
    return {**rec, "sessionQueue": list(rec.get("sessionQueue") or []), "updated": ts}


def enqueue(tx: Tx, rec: dict[str, Any], sid: str, entry: dict[str, Any], ts: int) -> dict[str, Any]:
    """Append a pending entry ``{id, op, message, caller, ts}`` to session ``sid`` (which must exist).

    Raises:
        KeyError: no such session.
    """
    session = _existing(tx, rec, sid)
    meta = dict(session["meta"])
    if entry["caller"] not in meta["parties"]:
        meta["parties"] = list(meta["parties"]) + [entry["caller"]]
    meta["lastActivity"] = ts
    session = {**session, "meta": meta, "pending": seq_append(tx, session["pending"], [entry])}
    rec = _put(tx, rec, sid, session)
    return {**rec, "sessionQueue": _queue(rec, sid, session), "updated": ts}


def pending_count(tx: Tx, rec: dict[str, Any]) -> int:
    """Pending entries across the agent's sessions (only queued sessions have any)."""
    return sum(seq_len(get(tx, rec, sid)["pending"]) for sid in rec.get("sessionQueue") or ())


def chat_ids(tx: Tx, rec: dict[str, Any]) -> list[str]:
    """The job ids of every ``agent:chat`` still waiting in a session of the record."""
    out = []
    for sid in rec.get("sessionQueue") or ():
        out += [e["id"] for e in seq_plain(tx, get(tx, rec, sid)["pending"]) if e.get("op") == "agent:chat"]
    return out


def _without(tx: Tx, pending: Any, ids: set[str]) -> list[dict[str, Any]]:
    return [e for e in seq_plain(tx, pending) if e["id"] not in ids]


def take_turn(tx: Tx, rec: dict[str, Any], sid: str, pending: list[dict[str, Any]], task_id: str | None,
              new_history: list[dict[str, Any]], ts: int) -> dict[str, Any]:
    """Record one turn on session ``sid``: the entries ``pending`` it took leave the session's
    pending, ``new_history`` (the run's messages: one user message per entry in order, the
    task's input if ``task_id``, then the model's) is appended with its turn number.
    A session deleted meanwhile takes nothing (the turn is kept in no session)."""
    session = get(tx, rec, sid)
    if session is None:
        return rec
    meta = dict(session["meta"])
    turn = meta["turnCount"]
    msgs = []
    for i, m in enumerate(new_history):
        e = {**m, "turn": turn, "ts": ts}
        if i < len(pending):
            e.update(id=pending[i]["id"], caller=pending[i]["caller"], ts=pending[i]["ts"])
        elif i == len(pending) and task_id is not None:
            e["taskId"] = task_id
        msgs.append(e)
    meta.update(turnCount=turn + 1, lastActivity=ts)
    session = {**session, "meta": meta, "history": seq_append(tx, session["history"], msgs),
               "pending": _without(tx, session["pending"], {e["id"] for e in pending})}
    rec = _put(tx, rec, sid, session)
    return {**rec, "sessionQueue": _queue(rec, sid, session), "updated": ts}


def drop_pending(tx: Tx, rec: dict[str, Any], sid: str, ids: list[str], ts: int) -> dict[str, Any]:
    """Remove the pending entries ``ids`` of session ``sid`` (a failed turn's chats, a cancelled
    chat); the record unchanged when none of them is there."""
    session = get(tx, rec, sid)
    if session is None or not ids:
        return rec
    pending = _without(tx, session["pending"], set(ids))
    if len(pending) == seq_len(session["pending"]):
        return rec  # none of them is waiting (answered, or cancelled, meanwhile)
    session = {**session, "pending": pending}
    rec = _put(tx, rec, sid, session)
    return {**rec, "sessionQueue": _queue(rec, sid, session), "updated": ts}


def clear_pending(tx: Tx, rec: dict[str, Any]) -> dict[str, Any]:
    """Drop every session's pending entries (a terminated agent takes no more turns)."""
    if not rec.get("sessionQueue"):
        return rec
    for sid in rec["sessionQueue"]:
        rec = _put(tx, rec, sid, {**get(tx, rec, sid), "pending": []})
    return {**rec, "sessionQueue": []}


def rename(tx: Tx, rec: dict[str, Any], sid: str, title: str, ts: int) -> dict[str, Any]:
    """Set session ``sid``'s title. Raises KeyError when there is no such session."""
    session = _existing(tx, rec, sid)
    rec = _put(tx, rec, sid, {**session, "meta": {**session["meta"], "title": title}})
    return {**rec, "updated": ts}


def delete(tx: Tx, rec: dict[str, Any], sid: str, ts: int) -> dict[str, Any]:
    """Remove session ``sid`` from the live record (earlier versions keep it).
    Raises KeyError when there is no such session."""
    sessions = map_delete(tx, rec.get("sessions") or {}, sid)
    queue = [q for q in rec.get("sessionQueue") or () if q != sid]
    return {**rec, "sessions": sessions, "sessionQueue": queue, "updated": ts}


def _is_summary(m: Any) -> bool:
    return isinstance(m, dict) and m.get("summary") is True


def split_index(tx: Tx, history: Any, turn: int) -> int:
    """The index of the first message of turn ``turn`` or later (``len`` if none): a binary
    search on the ``turn`` numbers, which only grow along a history (a summary has none)."""
    lo, hi = 0, seq_len(history)
    if hi and _is_summary(seq_get(tx, history, 0)):
        lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if seq_get(tx, history, mid).get("turn", -1) < turn:
            lo = mid + 1
        else:
            hi = mid
    return lo


def compact(tx: Tx, rec: dict[str, Any], sid: str, summary: str, keep_turns: int, before: str, before_seq: int,
            ts: int) -> dict[str, Any]:
    """Replace the live turns of session ``sid`` older than its last ``keep_turns`` with one
    summary message; ``meta.archives`` gains ``{turns: [lo, hi], id: before, seq: before_seq,
    sessionId}``: the version (commit id, seq) whose session ``sessionId`` still holds those turns.
    Nothing changes when no turn is older than the last ``keep_turns``.

    Raises:
        KeyError: no such session.
    """
    session = _existing(tx, rec, sid)
    meta = dict(session["meta"])
    lo, hi = meta.get("compactedTurns", 0), meta["turnCount"] - keep_turns
    if hi <= lo:
        return rec
    history = session["history"]
    cut = split_index(tx, history, hi)
    kept = seq_plain(tx, history, cut)
    entry = {"role": "system", "content": summary, "summary": True, "turns": [0, hi], "ts": ts}
    meta["compactedTurns"] = hi
    meta["archives"] = list(meta.get("archives") or []) + [{"turns": [lo, hi], "id": before, "seq": before_seq,
                                                            "sessionId": sid}]
    meta["lastActivity"] = ts
    session = {**session, "meta": meta, "history": seq_append(tx, [entry], kept)}
    rec = _put(tx, rec, sid, session)
    return {**rec, "updated": ts}


def for_fork(tx: Tx, src: dict[str, Any], only: str | None = None) -> dict[str, Any]:
    """The ``sessions``/``sessionQueue`` keys a fork of ``src`` gets: every session (or only
    ``only``) with its history and meta, nothing pending (a fork starts with no work).
    Empty when ``src`` has no sessions (a fork of an agent without sessions has no such keys).

    Raises:
        KeyError: ``only`` is not a session of ``src``.
    """
    if only is not None:
        session = get(tx, src, only)
        if session is None:
            raise KeyError(only)
        return {"sessions": {only: {**session, "pending": []}}, "sessionQueue": []}
    if "sessions" not in src:
        return {}
    sessions = src["sessions"]
    for sid in src.get("sessionQueue") or ():
        sessions = map_set(tx, sessions, sid, {**map_get(tx, sessions, sid), "pending": []})
    return {"sessions": sessions, "sessionQueue": []}


def copy_session(tx: Tx, rec: dict[str, Any], session: dict[str, Any], new_sid: str, caller: str, title: str,
                 ts: int) -> dict[str, Any]:
    """The record with ``session`` (from any version) copied as a new session ``new_sid``:
    its history, turn count and archives shared, nothing pending, started now."""
    meta = {**session["meta"], "id": new_sid, "title": title, "started": ts, "lastActivity": ts}
    if caller not in meta["parties"]:
        meta["parties"] = list(meta["parties"]) + [caller]
    rec = _put(tx, rec, new_sid, {**session, "meta": meta, "pending": []})
    return {**rec, "sessionQueue": list(rec.get("sessionQueue") or []), "updated": ts}


def summary_text(summary: str) -> str:
    """How a compaction summary is shown to the model."""
    return f"Summary of the earlier turns of this conversation: {summary}"


def _model(m: dict[str, Any]) -> dict[str, Any]:
    if _is_summary(m):
        return {"role": "system", "content": summary_text(m["content"])}
    return {k: m[k] for k in MODEL_KEYS if k in m}


def window(tx: Tx, history: Any, n: int) -> list[dict[str, Any]]:
    """The model's view of a session history: its summary (always, when compacted), then its
    ``n`` most recent messages, never starting on an orphaned tool result; bookkeeping keys
    (``turn``, ``ts``, ``id``, ...) left out."""
    total = seq_len(history)
    first = 1 if total and _is_summary(seq_get(tx, history, 0)) else 0
    msgs = seq_plain(tx, history, max(first, total - n), total) if n else []
    while msgs and msgs[0].get("role") == "tool":
        msgs.pop(0)
    head = [_model(seq_get(tx, history, 0))] if first else []
    return head + [_model(m) for m in msgs]


def live_turns(meta: dict[str, Any]) -> int:
    """Turns in the live history (the compacted ones are in the summary)."""
    return meta["turnCount"] - meta.get("compactedTurns", 0)


def read_messages(tx: Tx, history: Any, max_turns: int | None, max_chars: int | None) -> tuple[list[dict], bool]:
    """The last ``max_turns`` turns of a history (with its summary, if compacted), cut from the
    oldest side to at most ``max_chars`` characters of JSON; ``(messages, truncated)``."""
    total = seq_len(history)
    start = 1 if total and _is_summary(seq_get(tx, history, 0)) else 0
    summary = [tx.plain(seq_get(tx, history, 0))] if start else []
    truncated = False
    if max_turns is not None and total > start:
        last = seq_get(tx, history, total - 1).get("turn", 0)
        cut = split_index(tx, history, last + 1 - max_turns) if max_turns else total
        truncated = cut > start
        start = max(start, cut)
    msgs = summary + seq_plain(tx, history, start, total)
    if max_chars is not None:
        enc = msgspec.json.encode
        size = sum(len(enc(m)) for m in msgs)
        while msgs and size > max_chars:
            size -= len(enc(msgs.pop(0)))
            truncated = True
    return msgs, truncated


def summary_of(sid: str, session: dict[str, Any]) -> dict[str, Any]:
    """A session as ``agent:sessions`` lists it."""
    meta = session["meta"]
    return {"sessionId": sid, "title": meta.get("title", ""), "created": meta["started"],
            "updated": meta["lastActivity"], "turnCount": meta["turnCount"], "status": meta.get("status", ACTIVE),
            "parties": list(meta.get("parties", [])), "pending": seq_len(session["pending"])}
