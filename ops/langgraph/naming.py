"""Ref names of LangGraph threads on the lattice.

Every ref of a thread starts with ``t/<caller>/<T>`` where ``<T>`` is the
thread id with ``%``-escapes (see :func:`escape`); a ref is one of::

    t/<caller>/<T>                the head of the root namespace (checkpoint_ns "")
    t/<caller>/<T>#<N>            the head of namespace <N> (a subgraph's checkpoint_ns)
    <head>@<I>                    another branch tip of that namespace: checkpoint <I>
    <head>!<I>                    writes parked for checkpoint <I>, not stored yet
    <head>?                       the namespace's version: a fresh commit for each change
                                  that adds or rewrites a branch (see ops.langgraph.plans)

``<N>`` and ``<I>`` are escaped like ``<T>``. The escapes leave letters,
digits and ``-._~:|+=,;()$*'[]^`{}&`` as they are, so a uuid thread id, a
LangGraph namespace (``node:<task id>|child:<task id>``) and a checkpoint id
(uuid6) appear verbatim. ``/``, ``#``, ``@``, ``!``, ``%``, spaces, control and
non-ASCII characters are escaped, so the markers (``#@!?``) split a name unambiguously and
a thread is one path segment.

>>> head_ref("local", "thread-1", "")
't/local/thread-1'
>>> head_ref("local", "a/b", "child:1|x:2")
't/local/a%2Fb#child:1|x:2'
>>> parse_ref("t/local/a%2Fb#child:1|x:2@1ef")
RefName(caller='local', thread_id='a/b', ns='child:1|x:2', kind='tip', key='1ef')
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote

__all__ = [
    "PREFIX", "MAX_NAME", "RefName", "escape", "unescape", "thread_base", "head_ref", "tip_ref",
    "parked_ref", "version_ref", "namespace_refs", "parse_ref", "caller_prefix", "is_thread_ref",
]

#: First segment of every thread ref.
PREFIX = "t"
#: Longest ref name accepted, in UTF-8 bytes (LMDB keys are at most 511 bytes).
MAX_NAME = 480
_SAFE = "-._~:|+=,;()$*'[]^`{}&"
_MARKERS = "#@!?"


class RefName(NamedTuple):
    """A parsed thread ref: ``kind`` is ``head``, ``tip``, ``parked`` or ``version``; ``key`` the
    checkpoint id of a tip or parked ref (``""`` for a head or a version)."""

    caller: str
    thread_id: str
    ns: str
    kind: str
    key: str


def escape(text: str) -> str:
    """``text`` with every character outside the safe set ``%``-escaped (UTF-8).

    >>> escape("a b/c")
    'a%20b%2Fc'
    """
    return quote(text, safe=_SAFE)


def unescape(text: str) -> str:
    """Inverse of :func:`escape`."""
    return unquote(text)


def _check_caller(caller: str) -> str:
    if not isinstance(caller, str) or not caller or "/" in caller or any(c < " " for c in caller):
        raise ValueError(f"caller must be a non-empty str without '/' or control characters, got {caller!r}")
    return caller


def thread_base(caller: str, thread_id: object) -> str:
    """``t/<caller>/<T>``: the name every ref of the thread starts with.

    Args:
        caller: owner of the thread (one path segment).
        thread_id: LangGraph's ``thread_id`` (converted with ``str``). Source: the caller.

    Raises:
        ValueError: the thread id is empty.
    """
    tid = str(thread_id)
    if not tid:
        raise ValueError("thread_id must be a non-empty string")
    return f"{PREFIX}/{_check_caller(caller)}/{escape(tid)}"


def head_ref(caller: str, thread_id: object, ns: str) -> str:
    """The head ref of namespace ``ns`` of a thread.

    Raises:
        ValueError: the thread id is empty, or the name would exceed :data:`MAX_NAME`.
    """
    name = thread_base(caller, thread_id) + (f"#{escape(ns)}" if ns else "")
    if len(name.encode()) + 40 > MAX_NAME:  # room for a tip or parked suffix (a uuid)
        raise ValueError(f"thread_id and checkpoint_ns are too long for a ref name ({len(name)} characters)")
    return name


def tip_ref(head: str, checkpoint_id: str) -> str:
    """The ref of a branch tip (checkpoint ``checkpoint_id``) beside ``head``."""
    return f"{head}@{escape(checkpoint_id)}"


def parked_ref(head: str, checkpoint_id: str) -> str:
    """The ref of writes parked for a checkpoint not stored yet."""
    return f"{head}!{escape(checkpoint_id)}"


def version_ref(head: str) -> str:
    """The version ref of the namespace whose head ref is ``head``."""
    return f"{head}?"


def namespace_refs(head: str) -> tuple[list[str], list[str]]:
    """``(names, prefixes)`` of every ref of the namespace whose head ref is ``head``: its version
    and head, then the prefixes of its branch tips and of its parked writes."""
    return [version_ref(head), head], [head + "@", head + "!"]


def caller_prefix(caller: str) -> str:
    """``t/<caller>/``: the prefix of every thread ref of ``caller``."""
    return f"{PREFIX}/{_check_caller(caller)}/"


def parse_ref(name: str) -> RefName | None:
    """Split a thread ref name; ``None`` when ``name`` is not one."""
    parts = name.split("/", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    caller, rest = parts[1], parts[2]
    cut = len(rest)
    for m in "@!?":
        i = rest.find(m)
        if i >= 0:
            cut = min(cut, i)
    base, tail = rest[:cut], rest[cut:]
    kind, key = "head", ""
    if tail:
        kind = {"@": "tip", "!": "parked", "?": "version"}[tail[0]]
        key = unescape(tail[1:])
        if kind == "version" and key:
            return None
    thread, _, ns = base.partition("#")
    if not thread:
        return None
    return RefName(caller, unescape(thread), unescape(ns), kind, key)


def is_thread_ref(name: str, base: str) -> bool:
    """Whether ``name`` belongs to the thread whose refs start with ``base`` (not to a thread
    whose escaped id merely starts with the same characters)."""
    return name.startswith(base) and (len(name) == len(base) or name[len(base)] in _MARKERS)
