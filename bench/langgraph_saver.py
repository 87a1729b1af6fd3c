"""LatticeSaver against LangGraph's SQLite and PostgreSQL checkpointers: the same chat graph, side by side, in one run.

Up to six series grow one conversation each, turn by turn, alternating (each turn
runs on every series before the next turn starts; the order rotates), all on
the same disk, all with ``invoke(..., durability="sync")`` (``--durability`` picks
LangGraph's other modes: ``async``, its default, and ``exit``):

* ``SQLite default``: ``StateGraph`` with ``messages: Annotated[list, add_messages]``
  on ``SqliteSaver`` (WAL, ``synchronous=FULL``);
* ``SQLite delta``: the same with ``messages: Annotated[list,
  DeltaChannel(_messages_delta_reducer, snapshot_frequency=50)]`` (skipped when
  this langgraph has no ``DeltaChannel``);
* ``PostgresSaver``: the default graph on LangGraph's ``PostgresSaver``
  (``langgraph-checkpoint-postgres``, the bench extra) on a real PostgreSQL;
* ``Lattice (PostgreSQL)``: the default graph on ``LatticeSaver`` over a
  ``PostgresStore`` (``LatticeSaver.from_conn_string("postgresql://...")``) on the
  same server, a database of its own;
* ``Lattice (SQLite)``: the default graph on ``LatticeSaver`` over a durable
  ``SqliteStore``, one file in WAL mode (``LatticeSaver.from_conn_string("sqlite:<file>")``);
* ``Lattice``: the default graph on ``LatticeSaver`` over a durable ``LmdbStore``
  (``LatticeSaver.from_conn_string(<dir>)``).

``--series`` picks some of them: ``sqlite-default``, ``sqlite-delta``, ``postgres-saver``,
``lattice-pg``, ``lattice-sqlite``, ``lattice`` (all by default). Ratios are against the last
one that runs (``Lattice`` when it does), and SQLite's against ``Lattice (SQLite)`` too.

The PostgreSQL series need a server: ``--pg URL`` (a superuser URL; a database is
created per series), else one started for the run in the temp dir with PostgreSQL's
durable defaults (``fsync``, ``synchronous_commit`` on: tests/pg.py, the Debian
binaries in ``/usr/lib/postgresql/*/bin``); without either they are left out, and said so.

A turn is one human message of ``--chars`` characters (seeded, the same text on
every side) and one AI reply from a deterministic fake model node (the text
reversed). When the conversation reaches each N of ``--ns`` the run measures on
every series:

* step latency p50/p99 over the last ``max(10, N // 10)`` turns up to N;
* bytes on disk: the SQLite file after ``PRAGMA wal_checkpoint(TRUNCATE)``;
  LMDB's pages in use (``LmdbStore.stats()["used_bytes"]``); our SQLite file's
  pages (``SqliteStore.stats()["used_bytes"]``: page_count x page_size, the file once
  its WAL is checkpointed); on PostgreSQL the saver's tables with their indexes and
  TOAST (``pg_total_relation_size``);
* ``graph.get_state_history`` of the whole thread (every checkpoint with its values);
* ``graph.get_state`` of an old checkpoint (the one after turn N/2);
* copying the thread with its whole history: ``saver.copy_thread`` on ours; on
  SQLite and PostgresSaver, which have no ``copy_thread``, the equivalent SQL
  (``INSERT ... SELECT`` of the thread's rows of every table in one transaction;
  the copy is deleted afterwards, untimed).

After the last N, ``--short K`` new threads (default 20) of 10 turns each run on every
saver, the series alternating turn by turn: the N = 10 step latency again over 10K
samples, on savers and stores that are no longer cold. The N = 10 target is checked on
both figures, for ``Lattice`` and for ``Lattice (SQLite)``.

Then ``--calls K`` (default 20): the checkpointer calls of K new threads of 10 turns,
recorded on LangGraph's ``InMemorySaver`` and replayed on one thread on a fresh saver of each
series and on ``LatticeSaver`` over the memory store: each saver's own cost per ``put`` and
``put_writes``, wall and CPU, without LangGraph (see ``bench/saver_calls.py``).

Floor, in the same run: a raw ``fsync`` of 400 bytes (the disk's cost of one
durable commit).

Run: ``pip install -e '.[bench,test]'`` then ``python bench/langgraph_saver.py``
(``--quick``: N = 10 and 100, under a minute). Prints one table per metric with
the series and the ratios, the library versions and the machine, and the
targets checked at the largest N.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sqlite3
import string
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/machine.py

from machine import cpu_model, ver  # noqa: E402

try:
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
except ImportError as e:  # pragma: no cover - the extras are missing
    raise SystemExit(f"bench/langgraph_saver.py needs the bench and test extras: pip install -e '.[bench,test]' ({e})")

try:  # DeltaChannel is beta (langgraph >= 1.1); its messages reducer is marked experimental
    from langgraph.channels import DeltaChannel
    from langgraph.graph.message import _messages_delta_reducer
except ImportError:  # pragma: no cover - an older langgraph
    DeltaChannel = None  # type: ignore[assignment,misc]
    _messages_delta_reducer = None  # type: ignore[assignment]

from ops.langgraph import LatticeSaver  # noqa: E402
from saver_calls import capture, replay, report_calls  # noqa: E402

THREAD = "t"
#: turns of each new thread of the --short measure (the N = 10 latency over more samples)
SHORT_TURNS = 10
SERIES = ["sqlite-default", "sqlite-delta", "postgres-saver", "lattice-pg", "lattice-sqlite", "lattice"]
PG_SERIES = ("postgres-saver", "lattice-pg")
PG_SAVER_TABLES = ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]
#: the lattice series the targets are checked on (those that run)
LATTICES = ("Lattice", "Lattice (SQLite)")
SQ = LATTICES[1]


# ----------------------------------------------------------------- helpers
def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms_since(t: float) -> float:
    return (time.perf_counter() - t) * 1000


def repeat(fn: Callable[[], Any], reps: int, budget_s: float) -> list[float]:
    """Time ``fn`` up to ``reps`` times, stopping once ``budget_s`` is spent (at least once)."""
    out: list[float] = []
    t0 = time.perf_counter()
    while len(out) < reps:
        t = time.perf_counter()
        fn()
        out.append(ms_since(t))
        if time.perf_counter() - t0 > budget_s:
            break
    return out


def fsync_floor(root: Path, n: int = 100) -> list[float]:
    fd = os.open(root / "fsync-floor", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 400)
            os.fsync(fd)
            out.append(ms_since(t))
        return out
    finally:
        os.close(fd)


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f} B"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:,.1f}x"


def saver_calls(args: argparse.Namespace, make: Callable[[str], list], all_texts: list[str]) -> dict:
    """The ``--calls`` measure (:mod:`saver_calls`): the default graph's calls replayed on a fresh saver of
    each series (one SqliteSaver for both SQLite series) and on a LatticeSaver over the memory store."""
    if "lattice" not in args.series:
        return {}  # the table's ratios are against the lattice on LMDB
    calls = capture(build_graph, DefaultState, args.calls, SHORT_TURNS, all_texts, DURABILITY)
    fresh = [s for s in make("calls") if s.name != "SQLite delta"]
    label = {"SQLite default": "SqliteSaver"}
    savers = {label.get(s.name, s.name): s.saver for s in fresh}
    with LatticeSaver.from_conn_string(":memory:", linger=0) as mem:
        for s in fresh:
            if isinstance(s.saver, LatticeSaver):
                s.saver.linger = 0  # one call after another: nothing to share a commit with
        savers["Lattice (memory)"] = mem
        try:
            return replay(calls, savers)
        finally:
            for s in fresh:
                s.close()


# ----------------------------------------------------------------- the graph
class DefaultState(TypedDict):
    messages: Annotated[list, add_messages]


def fake_llm(state: dict) -> dict:
    """The deterministic fake model: the last message reversed, with a stable id."""
    m = state["messages"][-1]
    return {"messages": [AIMessage(content=m.content[::-1], id=f"ai-{m.id}")]}


#: LangGraph's durability mode of every invoke (``--durability``)
DURABILITY = "sync"
#: checkpoints a turn (one invoke) stores: input, after the input, after the node; ``exit`` only the last
#: (the ``DeltaChannel`` graph one more in a thread: 11 for 10 turns, where ``InMemorySaver`` and ours keep 10)
CHECKPOINTS_PER_TURN = {"sync": 3, "async": 3, "exit": 1}


def build_graph(state_type: Any, saver: Any) -> Any:
    g = StateGraph(state_type)
    g.add_node("llm", fake_llm)
    g.add_edge(START, "llm")
    g.add_edge("llm", END)
    return g.compile(checkpointer=saver)


class Series:
    """One conversation on one saver; subclasses open the saver and copy a thread."""

    name = "?"
    state_type: Any = DefaultState

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.cfg = {"configurable": {"thread_id": THREAD}}
        self.mids: dict[int, dict] = {}
        self.copies = 0

    def step(self, turn: int, text: str) -> float:
        t = time.perf_counter()
        out = self.graph.invoke({"messages": [HumanMessage(content=text, id=f"h{turn}")]}, self.cfg,
                                durability=DURABILITY)
        ms = ms_since(t)
        assert out["messages"][-1].content == text[::-1]
        return ms

    def mark(self, turn: int) -> None:
        self.mids[turn] = self.saver.get_tuple(self.cfg).config

    def history(self, reps: int, budget: float) -> tuple[list[float], int]:
        n = [0]

        def go() -> None:
            n[0] = sum(1 for _ in self.graph.get_state_history(self.cfg))
        return repeat(go, reps, budget), n[0]

    def read_old(self, turn: int, reps: int, budget: float, expect: str) -> list[float]:
        cfg = self.mids[turn]

        def go() -> None:
            msgs = self.graph.get_state(cfg).values["messages"]
            assert len(msgs) == 2 * turn and msgs[0].content == expect
        return repeat(go, reps, budget)

    def copy(self, reps: int, budget: float, n_msgs: int) -> list[float]:
        out = []
        t0 = time.perf_counter()
        while len(out) < reps:
            self.copies += 1
            dst = f"copy-{self.copies}"
            t = time.perf_counter()
            self.copy_thread(dst)
            out.append(ms_since(t))
            if len(out) == 1:  # the copy is a real thread: the whole history, the same state
                st = self.graph.get_state({"configurable": {"thread_id": dst}})
                assert len(st.values["messages"]) == n_msgs
            self.drop_copy(dst)
            if time.perf_counter() - t0 > budget:
                break
        return out


class SqliteSeries(Series):
    def __init__(self, root: Path, delta: bool, snapshot_frequency: int) -> None:
        super().__init__(root)
        self.name = "SQLite delta" if delta else "SQLite default"
        if delta:
            self.state_type = TypedDict("DeltaState", {"messages": Annotated[list, DeltaChannel(
                _messages_delta_reducer, snapshot_frequency=snapshot_frequency)]})
        self.path = root / "db.sqlite"
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()  # journal_mode=WAL
        self.conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL on each commit
        self.graph = build_graph(self.state_type, self.saver)

    def disk(self) -> int:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = Path(str(self.path) + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def copy_thread(self, dst: str) -> None:
        with self.saver.lock, self.conn:  # one transaction
            self.conn.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
                " checkpoint, metadata) SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
                " checkpoint, metadata FROM checkpoints WHERE thread_id = ?", (dst, THREAD))
            self.conn.execute(
                "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,"
                " type, value) SELECT ?, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type,"
                " value FROM writes WHERE thread_id = ?", (dst, THREAD))

    def drop_copy(self, dst: str) -> None:
        self.saver.delete_thread(dst)

    def close(self) -> None:
        self.conn.close()


class LatticeSeries(Series):
    """LatticeSaver over a durable LmdbStore."""

    name = "Lattice"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._cm = LatticeSaver.from_conn_string(str(root / "lmdb"))
        self.saver = self._cm.__enter__()
        self.graph = build_graph(self.state_type, self.saver)

    def disk(self) -> int:
        return self.saver.store.stats()["used_bytes"]

    def copy_thread(self, dst: str) -> None:
        self.saver.copy_thread(THREAD, dst)

    def drop_copy(self, dst: str) -> None:
        self.saver.delete_thread(dst)

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


class LatticeSqliteSeries(LatticeSeries):
    """LatticeSaver over a durable SqliteStore: one file (WAL); disk and copy_thread as on LMDB."""

    name = "Lattice (SQLite)"

    def __init__(self, root: Path) -> None:
        Series.__init__(self, root)
        self._cm = LatticeSaver.from_conn_string("sqlite:" + str(root / "lattice.db"))
        self.saver = self._cm.__enter__()
        self.graph = build_graph(self.state_type, self.saver)


class PostgresSaverSeries(Series):
    name = "PostgresSaver"

    def __init__(self, root: Path, url: str) -> None:
        from langgraph.checkpoint.postgres import PostgresSaver
        super().__init__(root)
        self.url = url
        self._cm = PostgresSaver.from_conn_string(url)
        self.saver = self._cm.__enter__()
        self.saver.setup()
        self.graph = build_graph(self.state_type, self.saver)

    def disk(self) -> int:
        return pg_relations_size(self.url, PG_SAVER_TABLES)

    def copy_thread(self, dst: str) -> None:
        conn = self.saver.conn
        with self.saver.lock, conn.transaction():  # one transaction
            conn.execute("INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
                         "type, checkpoint, metadata) SELECT %s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
                         "type, checkpoint, metadata FROM checkpoints WHERE thread_id = %s", (dst, THREAD))
            conn.execute("INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
                         "SELECT %s, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs "
                         "WHERE thread_id = %s", (dst, THREAD))
            conn.execute("INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,"
                         " idx, channel, type, blob) SELECT %s, checkpoint_ns, checkpoint_id, task_id, task_path, idx,"
                         " channel, type, blob FROM checkpoint_writes WHERE thread_id = %s", (dst, THREAD))

    def drop_copy(self, dst: str) -> None:
        self.saver.delete_thread(dst)

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


class LatticePgSeries(LatticeSeries):
    name = "Lattice (PostgreSQL)"

    def __init__(self, root: Path, url: str) -> None:
        Series.__init__(self, root)
        self._cm = LatticeSaver.from_conn_string(url)
        self.saver = self._cm.__enter__()
        self.graph = build_graph(self.state_type, self.saver)

    def disk(self) -> int:
        return self.saver.store.stats()["used_bytes"]  # lattice_objects and lattice_refs, indexes and TOAST


def pg_relations_size(url: str, tables: list[str]) -> int:
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        return sum(conn.execute("SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)", (t,)).fetchone()[0]
                   for t in tables)


class PgServer:
    """The PostgreSQL the PostgreSQL series use: ``--pg URL``, or one started for the run; ``why`` says
    why there is none. ``database()`` makes a fresh database (dropped at ``close()``)."""

    def __init__(self, url: str | None, root: Path) -> None:
        self.url, self.why, self._stop, self._dbs = url, "", None, []
        if url is None:
            try:
                from tests.pg import start_postgres
                self.url, self._stop = start_postgres(root, durable=True)
            except Exception as e:  # noqa: BLE001 - no binaries, or the server would not start
                self.why = str(e).splitlines()[0]

    def database(self) -> str:
        from tests.pg import create_database
        db = create_database(self.url)
        self._dbs.append(db)
        return db

    def version(self) -> str:
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def close(self) -> None:
        from tests.pg import drop_database
        for db in self._dbs:
            drop_database(db)
        if self._stop is not None:
            self._stop()


# ----------------------------------------------------------------- the run
def texts(n: int, chars: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    alphabet = string.ascii_lowercase + " " * 6
    return [f"{i} " + "".join(rnd.choice(alphabet) for _ in range(chars - len(str(i)) - 1)) for i in range(n)]


def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="lg-saver-bench-", dir=args.dir))
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    floor = fsync_floor(root)
    pg = PgServer(args.pg, root) if any(x in args.series for x in PG_SERIES) else None
    if pg is not None and pg.url is None:
        print(f"# no PostgreSQL: {pg.why}; the PostgreSQL series are left out (--pg URL gives one)", file=sys.stderr)

    def make(tag: str) -> list[Series]:
        out: list[Series] = []
        if "sqlite-default" in args.series:
            out.append(SqliteSeries(root / tag / "sqlite-default", False, args.snapshot_frequency))
        if "sqlite-delta" in args.series and DeltaChannel is not None:
            out.append(SqliteSeries(root / tag / "sqlite-delta", True, args.snapshot_frequency))
        if pg is not None and pg.url is not None:
            if "postgres-saver" in args.series:
                out.append(PostgresSaverSeries(root / tag / "postgres-saver", pg.database()))
            if "lattice-pg" in args.series:
                out.append(LatticePgSeries(root / tag / "lattice-pg", pg.database()))
        if "lattice-sqlite" in args.series:
            out.append(LatticeSqliteSeries(root / tag / "lattice-sqlite"))
        if "lattice" in args.series:
            out.append(LatticeSeries(root / tag / "lattice"))
        return out

    warm = make("warmup")  # throwaway stores: first calls (thread pools, caches) stay out of the figures
    for i, text in enumerate(texts(args.warmup, args.chars, args.seed + 1)):
        for s in warm:
            s.step(i, text)
    for s in warm:
        s.close()
    shutil.rmtree(root / "warmup", ignore_errors=True)
    series = make("run")
    ours = series[-1]  # the lattice series when it runs; ratios are against the last series
    ns = sorted(args.ns)
    all_texts = texts(max(ns), args.chars, args.seed)
    lat: dict[str, list[float]] = {s.name: [] for s in series}
    short: dict[str, list[float]] = {s.name: [] for s in series}
    rows: dict[int, dict[str, dict[str, Any]]] = {}
    turn = 0
    try:
        for n in ns:
            while turn < n:
                k = turn % len(series)
                for s in series[k:] + series[:k]:  # rotate who goes first
                    lat[s.name].append(s.step(turn, all_texts[turn]))
                turn += 1
                if turn == max(1, n // 2):
                    for s in series:
                        s.mark(turn)
            mid = max(1, n // 2)
            if mid not in ours.mids:
                for s in series:
                    s.mark(mid)
            window = max(10, n // 10)
            rows[n] = {}
            for s in series:
                last = lat[s.name][n - window:n]
                r = rows[n][s.name] = {"p50": pct(last, 50), "p99": pct(last, 99), "disk": s.disk()}
                h, count = s.history(args.reps, args.budget)
                assert count - CHECKPOINTS_PER_TURN[DURABILITY] * n in (0, DURABILITY == "exit"), (s.name, count)
                r["history"] = pct(h, 50)
                r["old"] = pct(s.read_old(mid, args.reps * 5, args.budget, all_texts[0]), 50)
                cp = s.copy(args.reps * 5 if s is ours or s.name in LATTICES else args.reps, args.budget, 2 * n)
                r["copy"], r["copy_p99"] = pct(cp, 50), pct(cp, 99)
            print(f"# N = {n} done at {time.perf_counter() - t_start:.0f}s", file=sys.stderr)
        # The N = 10 latency again, over more samples: the first 10 turns of new threads (10 samples
        # of one thread are too few to tell 5% apart on a machine whose speed drifts).
        for k in range(args.short):
            for s in series:
                s.cfg = {"configurable": {"thread_id": f"short-{k}"}}
            for turn in range(SHORT_TURNS):
                j = (k + turn) % len(series)
                for s in series[j:] + series[:j]:
                    short[s.name].append(s.step(turn, all_texts[turn]))
        if args.short:
            print(f"# {args.short} new threads done at {time.perf_counter() - t_start:.0f}s", file=sys.stderr)
        calls = saver_calls(args, make, all_texts) if args.calls else None
        if calls:
            print(f"# {args.calls} threads' calls replayed at {time.perf_counter() - t_start:.0f}s", file=sys.stderr)
    finally:
        for s in series:
            s.close()
        pg_note = "" if pg is None else (f"PostgreSQL {pg.version()} at {pg.url.split('@')[-1]}" if pg.url else
                                         f"PostgreSQL series left out: {pg.why}")
        if pg is not None:
            pg.close()
    took = time.perf_counter() - t_start
    report(args, rows, [s.name for s in series], ours.name, floor, load0, took, root, pg_note, short)
    if calls:
        report_calls(calls, "Lattice", args.calls, SHORT_TURNS)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, rows: dict, names: list[str], ours: str, floor: list[float],
           load0: tuple, took: float, root: Path, pg_note: str = "", short: dict | None = None) -> None:
    pairs = [(n, ours) for n in names if n != ours]
    for like in (("PostgresSaver", "Lattice (PostgreSQL)"),  # like for like on PostgreSQL
                 ("SQLite default", SQ), ("SQLite delta", SQ)):  # and in one SQLite file
        if like[0] in names and like[1] in names and like not in pairs:
            pairs.append(like)
    print(f"# bench/langgraph_saver.py  python {platform.python_version()}  langgraph {ver('langgraph')}"
          f"  langgraph-checkpoint {ver('langgraph-checkpoint')}  langgraph-checkpoint-sqlite"
          f" {ver('langgraph-checkpoint-sqlite')}  langgraph-checkpoint-postgres"
          f" {ver('langgraph-checkpoint-postgres')}  langchain-core {ver('langchain-core')}  ormsgpack"
          f" {ver('ormsgpack')}  sqlite {sqlite3.sqlite_version}  psycopg {ver('psycopg')}")
    print(f"#   ours: lmdb {ver('lmdb')}  msgspec {ver('msgspec')}  blake3 {ver('blake3')}")
    load1 = os.getloadavg()
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores ({cpu_model()}), {platform.platform()};"
          f" stores under {root}; load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load0)},"
          f" at end {'/'.join(f'{x:.2f}' for x in load1)}")
    print(f"# workload: N turns of a {args.chars}-char human message + a {args.chars}-char AI reply (reversed);"
          f" SQLite WAL synchronous=FULL (SqliteSaver and ours); LMDB durable; durability={DURABILITY!r};"
          " series alternate turn by turn"
          f" after {args.warmup} warm-up turns on throwaway stores;"
          f" run took {took:.0f}s")
    if "SQLite delta" in names:
        print(f"# SQLite delta: DeltaChannel(_messages_delta_reducer, snapshot_frequency={args.snapshot_frequency})"
              " (DeltaChannel is beta; the reducer is marked experimental)")
    print(f"# floor: raw fsync of 400 B p50 {pct(floor, 50):.3f} ms, p99 {pct(floor, 99):.3f} ms (n={len(floor)})")
    if pg_note:
        print(f"# {pg_note} (durable: fsync and synchronous_commit on, unless --pg names a server set otherwise)")
    print()

    def table(title: str, cell: Callable[[dict], str], key: str, lower_better: bool = True) -> None:
        print(f"#### {title}\n")
        head = ["N"] + names + [f"{p} / {q}" for p, q in pairs]
        print("| " + " | ".join(head) + " |")
        print("|" + "---:|" * len(head))
        for n, per in rows.items():
            cells = [f"{n:,}"] + [cell(per[x]) for x in names]
            cells += [ratio(per[p][key], per[q][key]) if lower_better else ratio(per[q][key], per[p][key])
                      for p, q in pairs]
            print("| " + " | ".join(cells) + " |")
        print()

    table("Step latency (ms), p50 / p99 over the last max(10, N/10) turns up to N",
          lambda r: f"{r['p50']:.2f} / {r['p99']:.2f}", "p50")
    if short and all(short.values()):
        k = len(short[ours]) // SHORT_TURNS
        print(f"#### Step latency (ms) of new threads: their first {SHORT_TURNS} turns, {k} threads, p50 / p99 "
              f"(n = {len(short[ours])} each)\n")
        print("| " + " | ".join(names + [f"{p} / {q}" for p, q in pairs]) + " |")
        print("|" + "---:|" * (len(names) + len(pairs)))
        print("| " + " | ".join([f"{pct(short[x], 50):.2f} / {pct(short[x], 99):.2f}" for x in names]
                                + [ratio(pct(short[p], 50), pct(short[q], 50)) for p, q in pairs]) + " |\n")
    table("Bytes on disk (SQLite file after wal_checkpoint(TRUNCATE); LMDB pages in use; Lattice (SQLite): "
          "page_count x page_size; PostgreSQL tables)",
          lambda r: fmt_bytes(r["disk"]), "disk")
    table(f"get_state_history of the whole thread ({CHECKPOINTS_PER_TURN[DURABILITY]}N checkpoints with values),"
          " ms, median",
          lambda r: f"{r['history']:,.1f}", "history")
    table("get_state of the checkpoint after turn N/2, ms, median",
          lambda r: f"{r['old']:.2f}", "old")
    table("Copy the thread with its history, ms, p50 / p99 (ours: copy_thread; theirs: INSERT ... SELECT of its rows)",
          lambda r: f"{r['copy']:.3f} / {r['copy_p99']:.3f}", "copy")

    lattices = [x for x in LATTICES if x in names]
    if not lattices or "SQLite default" not in names:
        return  # the targets compare the lattice (on LMDB, on SQLite) with SQLite default (and delta)
    top = max(rows)
    note = "" if top >= 1000 else " (the targets are set for N = 1,000; this run stops earlier)"
    print(f"#### Targets at N = {top:,}{note}\n")
    print("| target | met | measured |\n|---|---|---|")
    for lat in lattices:
        tag = "" if lat == "Lattice" else f"{lat}: "
        for what, ok, got in targets(rows, lat, short):
            print(f"| {tag}{what} | {'yes' if ok else 'NO'} | {got} |")
    print()


def targets(rows: dict, ours: str, short: dict | None) -> list[tuple[str, bool, str]]:
    """The targets of the lattice series ``ours`` at the largest N (the N = 10 step at the smallest):
    ``(what, met, measured)``."""
    top = max(rows)
    r = rows[top]
    lo = rows[min(rows)]
    default, delta = r.get("SQLite default"), r.get("SQLite delta")
    checks = [
        ("disk at least 50x below SQLite default", default["disk"] / r[ours]["disk"] >= 50,
         ratio(default["disk"], r[ours]["disk"])),
        ("copy_thread under 1 ms", r[ours]["copy"] < 1, f"{r[ours]['copy']:.3f} ms"),
        ("copy_thread flat in N (within 2x of the smallest N)", r[ours]["copy"] <= 2 * max(lo[ours]["copy"], 0.05),
         f"{lo[ours]['copy']:.3f} -> {r[ours]['copy']:.3f} ms"),
        ("step at least 5x below SQLite default", default["p50"] / r[ours]["p50"] >= 5,
         ratio(default["p50"], r[ours]["p50"])),
    ]
    if delta is not None:
        checks.insert(1, ("disk below SQLite delta", r[ours]["disk"] < delta["disk"], ratio(delta["disk"], r[ours]["disk"])))
        checks.append((f"step at N = {min(rows)} no worse than SQLite delta",
                       lo[ours]["p50"] <= lo["SQLite delta"]["p50"],
                       f"{lo[ours]['p50']:.2f} vs {lo['SQLite delta']['p50']:.2f} ms"))
        if short and short.get(ours) and short.get("SQLite delta"):
            a, b = pct(short[ours], 50), pct(short["SQLite delta"], 50)
            checks.append((f"the same over {len(short[ours]) // SHORT_TURNS} new threads' first {SHORT_TURNS} turns",
                           a <= b, f"{a:.2f} vs {b:.2f} ms"))
    return checks


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ns", type=int, nargs="+", default=[10, 100, 1000], help="conversation lengths (turns)")
    p.add_argument("--quick", action="store_true", help="N = 10 and 100 (under a minute)")
    p.add_argument("--chars", type=int, default=400, help="characters per message")
    p.add_argument("--reps", type=int, default=5, help="repetitions of the read and copy measures")
    p.add_argument("--budget", type=float, default=20.0, help="seconds per read or copy measure at most")
    p.add_argument("--snapshot-frequency", type=int, default=50, help="DeltaChannel snapshot frequency")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--warmup", type=int, default=5, help="turns on throwaway stores before the run")
    p.add_argument("--short", type=int, default=20, metavar="K",
                   help=f"after the run, K new threads of {SHORT_TURNS} turns on each saver: the N = 10 step "
                        "latency over more samples (0: skip)")
    p.add_argument("--calls", type=int, default=20, metavar="K",
                   help="after the run, the checkpointer calls of K new threads of 10 turns, replayed on one "
                        "thread on a fresh saver of each series without LangGraph: each saver's own cost per "
                        "call (0: skip)")
    p.add_argument("--dir", default=None, help="where the stores go (default: the temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the stores")
    p.add_argument("--series", nargs="+", default=SERIES, choices=SERIES,
                   help="which series run (one alone measures it without the others' disk traffic)")
    p.add_argument("--pg", default=None, metavar="URL",
                   help="superuser URL of a running PostgreSQL for the PostgreSQL series (default: start one)")
    p.add_argument("--durability", choices=["sync", "async", "exit"], default="sync",
                   help="LangGraph's durability mode for every invoke (default sync: each checkpoint is stored "
                        "before the next step starts; async, LangGraph's default, stores it while the next step "
                        "runs; exit stores only the last one of an invoke)")
    args = p.parse_args(argv)
    global DURABILITY
    DURABILITY = args.durability
    if args.quick:
        args.ns, args.budget = [10, 100], min(args.budget, 3.0)
    run(args)


if __name__ == "__main__":
    main()
