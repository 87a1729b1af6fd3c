"""The ``lattice`` commands about an agent's versions: ``read`` (a path, at a version), ``log``, ``diff``, ``replay``.

A version is a ``seq`` (0 is the creation; ``lattice log`` lists them) or a commit id (64 hex digits,
``0x`` optional). The server's messages name the commands' options, not the operations' fields.

``log`` and ``diff`` also take a LangGraph thread instead of an agent, as ``agent:history`` and
``agent:diff`` take ``threadId`` instead of ``agentId``: ``--thread ID`` (its ``thread_id``) and
``--ns NS`` (a subgraph's ``checkpoint_ns``; default the root graph), and then no AGENT. A
checkpoint's version is its depth ``seq`` or its commit id, as ``lattice log --thread ID`` lists
them beside LangGraph's checkpoint ids. A combination the operations refuse (AGENT and
``--thread``, ``--ns`` without ``--thread``, ``--thread`` with ``--other``, ``diff --thread``
without ``--from``) is a usage error (exit 2) before anything is sent.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from .cli_common import call, dump, ok, url_option

__all__ = ["VERSION", "read", "log", "diff", "replay"]

_COMMIT = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class _Version(click.ParamType):
    """A version: a seq (an integer >= 0) or a commit id (64 hex digits, ``0x`` optional)."""

    name = "VERSION"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) and value >= 0:
            return value
        text = str(value).strip()
        if text.isascii() and text.isdigit():
            return int(text)
        if _COMMIT.fullmatch(text):
            return text
        self.fail(f"{value!r} is not a version: give a seq (an integer >= 0, as `lattice log` lists them) or a "
                  f"commit id (64 hex digits)", param, ctx)


VERSION = _Version()
#: the server's field names, as the options of these commands
_READ = {"at": "--at", "maxSize": "--max-size", "path": "PATH"}
_LOG = {"before": "--before", "limit": "--limit", "agentId": "AGENT", "threadId": "--thread", "ns": "--ns"}
_DIFF = {"from": "--from", "to": "--to", "otherAgentId": "--other", "limit": "--limit", "agentId": "AGENT",
         "threadId": "--thread", "ns": "--ns"}
_REPLAY = {"from": "--from", "to": "--to", "into": "--into", "config": "--config", "agentId": "AGENT"}


def _subject(agent: str | None, thread: str | None, ns: str | None) -> dict[str, str]:
    """The operation's subject: ``{"agentId": AGENT}``, or ``{"threadId": ID}`` with ``"ns"`` when given.

    Raises:
        click.UsageError: ``--ns`` without ``--thread``; neither AGENT nor ``--thread``; both.
    """
    if thread is None:
        if ns is not None:
            raise click.UsageError("--ns is a checkpoint namespace of a LangGraph thread: it needs --thread")
        if agent is None:
            raise click.UsageError("give AGENT, or --thread ID for a LangGraph thread")
        return {"agentId": agent}
    if agent is not None:
        raise click.UsageError(f"give AGENT or --thread, not both (got AGENT {agent!r} and --thread {thread!r}): "
                               f"with --thread the thread is what is shown")
    return {"threadId": thread} if ns is None else {"threadId": thread, "ns": ns}


def _when(ts: int) -> str:
    """``ts`` (Unix milliseconds) as UTC ``YYYY-MM-DD HH:MM:SS.mmm``.

    >>> _when(1795214690123)
    '2026-11-20 22:44:50.123'
    """
    import datetime
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


_thread_option = click.option("--thread", default=None, metavar="ID",
                              help="A LangGraph thread (its thread_id, as LatticeSaver stored it) instead of an "
                                   "agent: its checkpoints are the versions. Give no AGENT with it.")
_ns_option = click.option("--ns", default=None, metavar="NS",
                          help="With --thread: a subgraph's checkpoint namespace (its checkpoint_ns). Default: the "
                               "root graph.")


@click.command()
@click.argument("path")
@click.option("--max-size", default=1 << 20, show_default=True, type=click.IntRange(0),
              help="Largest value to return, bytes of JSON.")
@click.option("--at", type=VERSION, default=None,
              help="Read a g/<agentId>/... path as of a version (seq or commit id; see `lattice log`).")
@url_option
def read(path: str, max_size: int, at: int | str | None, url: str) -> None:
    """Print the value at a lattice PATH (g/<agentId>/..., w/..., j/<jobId>)."""
    body: dict[str, Any] = {"path": path, "maxSize": max_size}
    if at is not None:
        body["at"] = at
    out = ok(call(url, "covia:read", body, _READ), _READ)
    if not out.get("exists"):
        click.echo(f"nothing at {path}", err=True)
        sys.exit(1)
    if out.get("truncated"):
        click.echo(f"value at {path} is {out['size']} bytes, over --max-size {max_size}", err=True)
        sys.exit(1)
    dump(out["value"])


@click.command()
@click.argument("agent", required=False)
@_thread_option
@_ns_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Versions to show.")
@click.option("--before", type=click.IntRange(0), default=None, help="Only versions with a smaller seq (paging).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@url_option
def log(agent: str | None, thread: str | None, ns: str | None, limit: int, before: int | None, as_json: bool,
        url: str) -> None:
    """List AGENT's versions, newest first: seq, time, operation, caller, id.

    With --thread ID (and no AGENT), a LangGraph thread's checkpoints, newest first: seq (the
    checkpoint's depth), time, LangGraph's checkpoint id, commit id; `lattice diff --thread ID`
    takes the seq or the commit id.
    """
    body: dict[str, Any] = {**_subject(agent, thread, ns), "limit": limit}
    if before is not None:
        body["before"] = before
    out = ok(call(url, "agent:history", body, _LOG), _LOG)
    if as_json:
        return dump(out)
    for v in out["versions"]:
        if thread is None:
            click.echo(f"{v['seq']:>7}  {_when(v['ts'])}  {v['op']:<18} {v['caller']:<12} {v['id'][:16]}")
        else:
            click.echo(f"{v['seq']:>7}  {_when(v['ts'])}  {v.get('checkpointId') or '-':<36}  {v['id'][:16]}")


@click.command()
@click.argument("agent", required=False)
@_thread_option
@_ns_option
@click.option("--from", "from_", type=VERSION, default=None,
              help="The older version (seq or id; with --thread, a checkpoint's, as `lattice log --thread` lists "
                   "them).")
@click.option("--to", type=VERSION, default=None, help="The newer version (default: the head, or the thread's newest "
                                                       "checkpoint).")
@click.option("--other", default=None, help="Compare with another agent's head instead (not with --thread).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 10_000), help="Most changes shown.")
@url_option
def diff(agent: str | None, thread: str | None, ns: str | None, from_: int | str | None, to: int | str | None,
         other: str | None, limit: int, url: str) -> None:
    """Show what changed in AGENT between two versions (or against another agent).

    With --thread ID (and no AGENT), what changed in a LangGraph thread between two of its
    checkpoints: --from is required, --to defaults to the newest. Changes are paths under the
    checkpoint (channel_values/messages/3, ...): + added, - removed, ~ changed.
    """
    subject = _subject(agent, thread, ns)
    if thread is not None and other is not None:
        raise click.UsageError("--other compares two agents' heads: it cannot be combined with --thread")
    if thread is not None and from_ is None:
        raise click.UsageError("--thread needs --from (a checkpoint's seq or id, as `lattice log --thread` lists them)")
    body: dict[str, Any] = {**subject, "limit": limit}
    for key, value in (("from", from_), ("to", to), ("otherAgentId", other)):
        if value is not None:
            body[key] = value
    out = ok(call(url, "agent:diff", body, _DIFF), _DIFF)
    for c in out["changes"]:
        mark = {"added": "+", "removed": "-", "changed": "~"}[c["change"]]
        detail = {k: c[k] for k in ("before", "after", "beforeSize", "afterSize") if k in c}
        click.echo(f"{mark} {c['path']}  {json.dumps(detail, ensure_ascii=False)}")
    if out["truncated"]:
        click.echo(f"... more than {limit} changes (raise --limit)", err=True)


@click.command()
@click.argument("agent")
@click.option("--from", "from_", type=VERSION, default=None, help="First version to replay (default: 0).")
@click.option("--to", type=VERSION, default=None, help="Last version to replay (default: the head).")
@click.option("--into", default=None,
              help="What-if: fork AGENT at --from into this new agent and re-apply its later inputs, calling the "
                   "model live wherever a request differs from the recorded one.")
@click.option("--config", "config_json", default=None, help="With --into: JSON config merged into the fork.")
@click.option("--chunk", default=500, show_default=True, type=click.IntRange(1), help="Versions per request.")
@url_option
def replay(agent: str, from_: int | str | None, to: int | str | None, into: str | None, config_json: str | None,
           chunk: int, url: str) -> None:
    """Re-run AGENT's recorded events and check that every version's root digest is reproduced.

    Exit 0 when identical, 1 at the first divergence (printed).
    """
    if into is not None:
        body: dict[str, Any] = {"agentId": agent, "into": into}
        if from_ is None:
            raise click.UsageError("--into needs --from (the version to fork at)")
        body["from"] = from_
        if config_json:
            try:
                body["config"] = json.loads(config_json)
            except json.JSONDecodeError as e:
                raise click.BadParameter(f"not valid JSON: {e}", param_hint="--config") from None
        return dump(ok(call(url, "agent:replay", body, _REPLAY), _REPLAY))
    if isinstance(from_, str) or isinstance(to, str):  # commit ids: one request, no progress
        out = ok(call(url, "agent:replay", {"agentId": agent, **{k: v for k, v in (("from", from_), ("to", to))
                                                                    if v is not None}}, _REPLAY), _REPLAY)
        dump(out)
        sys.exit(0 if out["identical"] else 1)
    head = ok(call(url, "agent:history", {"agentId": agent, "limit": 1}, _REPLAY), _REPLAY)["versions"][0]["seq"]
    lo, hi = from_ or 0, head if to is None else to
    if lo > hi:
        ok(call(url, "agent:replay", {"agentId": agent, "from": lo, "to": hi}, _REPLAY), _REPLAY)  # it says why
    total, replayed = hi - lo + 1, 0
    with click.progressbar(length=total, label=f"replaying {agent}", file=sys.stderr) as bar:
        for start in range(lo, hi + 1, chunk):
            end = min(start + chunk - 1, hi)
            out = ok(call(url, "agent:replay", {"agentId": agent, "from": start, "to": end}, _REPLAY), _REPLAY)
            replayed += out["replayed"]
            bar.update(out["replayed"])
            if not out["identical"]:
                dump({"agentId": agent, "replayed": replayed, "identical": False, "divergence": out["divergence"]})
                sys.exit(1)
    dump({"agentId": agent, "replayed": replayed, "identical": True, "divergence": None})
