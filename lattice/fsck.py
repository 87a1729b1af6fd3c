"""fsck: check that everything reachable from every ref is present and intact.

For each ref, the whole commit chain is walked (parents and jump pointers),
and every object reachable from each commit's root and input is read, which
re-hashes it (:class:`lattice.errors.CorruptObject` on a mismatch). Objects
are visited once, however many versions share them, so the cost is the size
of the store, not the number of versions times the state size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .codec import Link, decode
from .codec import links as _links
from .commits import read_commit
from .errors import CorruptObject, InvalidValue, NotFound

__all__ = ["Problem", "Report", "fsck"]


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` is ``missing``, ``corrupt``, ``undecodable``, ``bad_commit``,
    ``bad_chain`` or a caller-defined kind (``bad_record``); ``where`` names the ref
    and the object (hex digest)."""

    kind: str
    ref: str
    where: str
    message: str


@dataclass
class Report:
    refs: int = 0
    commits: int = 0
    objects: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(store: Any, *, prefix: str = "", check_head: Callable[[str, Any], Iterable[str]] | None = None,
         progress: Callable[[int, int], None] | None = None, max_problems: int = 1000) -> Report:
    """Check every ref under ``prefix``.

    Args:
        store: a store backend.
        check_head: called as ``check_head(ref, root_link)`` for each ref's head;
            returns messages for what it finds wrong (reported as ``bad_record``).
        progress: called as ``progress(done, total)`` after each ref.
        max_problems: stop collecting after this many problems.

    Returns:
        A :class:`Report`; ``report.ok`` when nothing was found.
    """
    refs = list(store.refs(prefix))
    report = Report()
    seen: set[bytes] = set()

    def problem(kind: str, ref: str, where: str, message: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(Problem(kind, ref, where, message))

    def visit(ref: str, start: Link) -> None:
        stack = [start]
        while stack:
            link = stack.pop()
            d = bytes(link.data)
            if d in seen:
                continue
            seen.add(d)
            try:
                obj = decode(store.get(d))
            except NotFound:
                problem("missing", ref, d.hex(), f"object {d.hex()} (kind {link.code}) is missing")
                continue
            except CorruptObject as e:
                problem("corrupt", ref, d.hex(), e.message)
                continue
            except InvalidValue as e:
                problem("undecodable", ref, d.hex(), e.message)
                continue
            report.objects += 1
            stack.extend(_links(obj))

    for i, (name, head) in enumerate(refs):
        report.refs += 1
        d, expected_seq = head, None
        while d is not None:
            try:
                c = read_commit(store, d)
            except NotFound:
                problem("missing", name, d.hex(), f"commit {d.hex()} is missing")
                break
            except CorruptObject as e:
                problem("corrupt", name, d.hex(), e.message)
                break
            except InvalidValue as e:
                problem("bad_commit", name, d.hex(), e.message)
                break
            if expected_seq is not None and c.seq != expected_seq:
                problem("bad_chain", name, d.hex(), f"commit has seq {c.seq}, its child expects {expected_seq}")
            if c.parent is not None and c.seq == 0 or c.parent is None and c.seq != 0 and not c.op.endswith(":prune"):
                problem("bad_chain", name, d.hex(), f"commit seq {c.seq} with parent {c.parent!r:.20}")
            if c.skip is not None and not store.has(c.skip):
                problem("missing", name, c.skip.hex(), f"jump target of commit {d.hex()} is missing")
            if d == head and check_head is not None:
                try:
                    for msg in check_head(name, c.root):
                        problem("bad_record", name, d.hex(), msg)
                except (NotFound, CorruptObject, InvalidValue) as e:
                    problem("bad_record", name, d.hex(), f"head record unreadable: {e}")
            if d in seen:
                break  # the rest of the chain was checked through another ref
            seen.add(d)
            report.commits += 1
            visit(name, c.root)
            for link in _links(c.input):
                visit(name, link)
            d, expected_seq = c.parent, c.seq - 1
        if progress is not None:
            progress(i + 1, len(refs))
    return report
