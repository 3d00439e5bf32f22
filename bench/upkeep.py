"""Benchmark: what upkeep buys the planner, what its rebuilds cost writers, what a quiet pass costs.

    .venv/bin/python bench/upkeep.py [--rows 300000] [--bloat-rows 4000000] [--deleted-pct 50]
                                     [--rounds 5] [--tables 50] [--partitions 9] [--passes 7]

1. Planner estimates: a partitioned table (``--partitions`` monthly partitions, ``--rows`` rows, the
   partitions analyzed as autovacuum leaves them, the parent never: autovacuum does not analyze a
   parent). Three queries on the parent (GROUP BY a low- and a high-cardinality column, a join on a
   parent column), each ``EXPLAIN ANALYZE``d: the q-error (max(estimate/actual, actual/estimate)) of
   its top node, before and after one upkeep pass (``flows.upkeep.run_once``). It must fall.
2. Writers beside a rebuild: single-row inserts into a table whose indexes are bloated
   (``--bloat-rows`` rows, 4 x ``--rounds`` identical indexes, ``--deleted-pct`` % of the rows
   deleted, vacuumed: above the default 40 % bloat threshold), from a process of their own (the
   bench's threads never share the writer's interpreter). Each round, windows one after the other:
   idle (as long as the last rebuild), a plain sequential scan of the table for as long (the floor:
   one core busy reading beside the writers, what any report query costs them), then one
   ``REINDEX INDEX CONCURRENTLY`` of a fresh bloated copy through upkeep's ``rebuild`` (lock_timeout,
   one core) per WAL compression — the policy's default (zstd), lz4, pglz and the server's own
   setting (off here) — in an order that turns each round, each with the WAL it wrote; a copy is
   dropped once rebuilt. The figure: each round's p95 over that round's idle p95, the median of the
   rounds (the p95 of all rounds pooled beside it). Target: <= 1.2x.
3. A pass with nothing to do: ``--tables`` partitioned tables of ``--partitions`` partitions each
   (two indexes each), all analyzed and recorded by a first pass; the database time of each further
   pass (every statement's time as the client sees it over a local connection: an upper bound),
   median of ``--passes``. Target: <= 0.2 s. An empty migrated database's pass is the reference.

PGTENDER_BENCH_DSN names the server (default postgresql://postgres@127.0.0.1:5432/postgres);
databases pgtender_bench_upkeep_* are created and dropped.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import structlog
from psycopg import conninfo, sql

from flows.core import migrations
from flows.core.logs import get_logger
from flows.core.policy.upkeep import UpkeepPolicy
from flows.upkeep import rebuild, upkeep_pass

SERVER = os.environ.get("PGTENDER_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ALWAYS_OPEN = {"start": "00:00", "end": "23:59", "timezone": "UTC"}  # the bench never waits for a window


def run_once(conn: Any, upkeep: Any, **options: Any) -> Any:
    """The upkeep pass in one call with ``upkeep`` as the policy's [upkeep] section."""
    from flows.core.policy.settings import Policy

    return upkeep_pass(conn, Policy(upkeep=upkeep), **options)


def dsn(name: str) -> str:
    return conninfo.make_conninfo(SERVER, dbname=name)


def create_db(tag: str) -> str:
    name = f"pgtender_bench_upkeep_{tag}"
    drop_db(name)
    with psycopg.connect(SERVER, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dsn(name), autocommit=True) as c:
        migrations.migrate(c)
    return name


def drop_db(name: str) -> None:
    with psycopg.connect(SERVER, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def policy(**thresholds: Any) -> UpkeepPolicy:
    return UpkeepPolicy(window=ALWAYS_OPEN, thresholds=thresholds, lock_timeout_ms=1000)


# --------------------------------------------------------------------------- 1. planner estimates

PARTITIONED = """
CREATE TABLE bench_events (id bigint, ts timestamptz NOT NULL, kind text, user_id int, payload text)
    PARTITION BY RANGE (ts);
CREATE TABLE bench_users (id int PRIMARY KEY, tier text);
INSERT INTO bench_users SELECT g, (ARRAY['free','pro','gold'])[1 + g % 3] FROM generate_series(1, 5000) g;
ANALYZE bench_users;
"""
QUERIES = {
    "GROUP BY kind (12 values)": "SELECT kind, count(*) FROM bench_events GROUP BY kind",
    "GROUP BY user_id (5000 values)": "SELECT user_id, count(*) FROM bench_events GROUP BY user_id",
    "join users, GROUP BY kind, tier (36)": (
        "SELECT e.kind, u.tier, count(*) FROM bench_events e JOIN bench_users u ON u.id = e.user_id"
        " GROUP BY e.kind, u.tier"
    ),
}


def build_partitioned(c: psycopg.Connection[Any], rows: int, partitions: int) -> None:
    c.execute(PARTITIONED)
    for m in range(partitions):
        c.execute(
            sql.SQL(
                "CREATE TABLE {} PARTITION OF bench_events FOR VALUES FROM"
                " (date_trunc('month', now()) - make_interval(months => {m}))"
                " TO (date_trunc('month', now()) - make_interval(months => {m} - 1))"
            ).format(sql.Identifier(f"bench_events_p{m}"), m=sql.Literal(m))
        )
    c.execute(
        "INSERT INTO bench_events SELECT g,"
        " date_trunc('month', now()) - make_interval(months => (g %% %(p)s)::int) + (g %% 1000) * interval '1 minute',"
        " 'kind_' || (g %% 12), (g::bigint * 7919) %% 5000 + 1, repeat('x', 30)"
        "  FROM generate_series(1, %(rows)s) g",
        {"rows": rows, "p": partitions},
    )
    for m in range(partitions):
        c.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(f"bench_events_p{m}")))


def q_errors(c: psycopg.Connection[Any]) -> dict[str, float]:
    out = {}
    for label, query in QUERIES.items():
        plan = c.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + sql.SQL(query)).fetchone()[0][0]["Plan"]  # type: ignore[index]
        estimate, actual = max(float(plan["Plan Rows"]), 1.0), max(float(plan["Actual Rows"]), 1.0)
        out[label] = max(estimate / actual, actual / estimate)
    return out


def planner_bench(rows: int, partitions: int) -> dict[str, Any]:
    name = create_db("planner")
    try:
        with psycopg.connect(dsn(name), autocommit=True) as c:
            build_partitioned(c, rows, partitions)
            before = q_errors(c)
            out = run_once(c, policy())
            analyzed = [a.parent for a in out.analyzed if a.status == "analyzed"]
            after = q_errors(c)
    finally:
        drop_db(name)
    geo = {
        k: math.exp(statistics.mean(math.log(v) for v in d.values()))
        for k, d in (("before", before), ("after", after))
    }
    print(
        f"\n1. planner row estimates on the partitioned parent ({rows:,} rows, {partitions} partitions):"
        f" q-error of the top node, before -> after one upkeep pass (analyzed {', '.join(analyzed)})"
    )
    for label in QUERIES:
        print(f"  {label:<38} {before[label]:>9.2f} -> {after[label]:>6.2f}")
    print(
        f"  {'geometric mean':<38} {geo['before']:>9.2f} -> {geo['after']:>6.2f}"
        f"  ({'falls' if geo['after'] < geo['before'] else 'DOES NOT FALL'})"
    )
    return {"rows": rows, "partitions": partitions, "before": before, "after": after, "geomean": geo}


# --------------------------------------------------------------------------- 2. writers beside a rebuild


def write(database: str, table: str, pids: Any, stop: Any, results: Any) -> None:
    """The writer, in a process of its own (the bench's own threads never share its interpreter):
    single-row inserts, each kept as (CLOCK_MONOTONIC at its start, milliseconds), until ``stop``."""
    query = sql.SQL("INSERT INTO {} (v, pad) VALUES (%s, 'w')").format(sql.Identifier(table))
    samples: list[tuple[float, float]] = []
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        pids.put(conn.info.backend_pid)
        i = 0
        while not stop.is_set():
            i += 1
            t0 = time.monotonic()
            conn.execute(query, (2_000_000_000 - i,))
            samples.append((t0, (time.monotonic() - t0) * 1000))
            time.sleep(0.001)
    results.put(samples)


class Writer:
    """The writer process, a watch of its lock waits (polled from here), and the bench's windows:
    each sample and lock wait counts for the window it started in."""

    def __init__(self, database: str, table: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop, pids, self.results = ctx.Event(), ctx.Queue(), ctx.Queue()
        self.process = ctx.Process(
            target=write, args=(database, table, pids, self.stop, self.results), daemon=True
        )
        self.process.start()
        self.pid = int(pids.get(timeout=60))
        self.database = database
        self.windows: list[tuple[str, int, float, float]] = []  # (phase, round, start, end)
        self.waits: list[float] = []
        self.watching = threading.Event()
        self.watch = threading.Thread(target=self._poll, daemon=True)
        self.watch.start()

    def _poll(self) -> None:
        with psycopg.connect(dsn(self.database), autocommit=True) as c:
            while not self.watching.is_set():
                row = c.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (self.pid,)
                ).fetchone()
                if row and row[0]:
                    self.waits.append(time.monotonic())
                time.sleep(0.02)

    def window(self, phase: str, k: int, start: float) -> None:
        self.windows.append((phase, k, start, time.monotonic()))

    def finish(self) -> tuple[dict[tuple[str, int], list[float]], dict[str, int]]:
        """Latencies (ms) per (phase, round) and lock-wait polls per phase."""
        self.stop.set()
        self.watching.set()
        samples = self.results.get(timeout=60)
        self.process.join()
        self.watch.join()
        latencies: dict[tuple[str, int], list[float]] = {}
        waits: dict[str, int] = {}
        for phase, k, start, end in self.windows:
            latencies[phase, k] = [ms for t, ms in samples if start <= t < end]
            waits[phase] = waits.get(phase, 0) + sum(1 for t in self.waits if start <= t < end)
        return latencies, waits


def build_bloated(c: psycopg.Connection[Any], rows: int, copies: int, deleted_pct: int) -> int:
    """``bench_items`` with ``copies`` identical indexes on v, ``deleted_pct`` % of the rows deleted
    (spread evenly) and vacuumed: each copy as bloated as the others (a round rebuilds fresh ones)."""
    c.execute(
        "CREATE TABLE bench_items (id bigserial PRIMARY KEY, v int, pad text) WITH (autovacuum_enabled = false)"
    )
    c.execute(
        "INSERT INTO bench_items (v, pad) SELECT (g::bigint * 7919) %% %(n)s, 'x' FROM generate_series(1, %(n)s) g",
        {"n": rows},
    )
    for k in range(copies):
        c.execute(sql.SQL("CREATE INDEX {} ON bench_items (v)").format(sql.Identifier(f"bench_items_v{k}")))
    c.execute("DELETE FROM bench_items WHERE id %% 100 < %s", (deleted_pct,))
    c.execute("VACUUM ANALYZE bench_items")
    return int(c.execute("SELECT pg_relation_size('bench_items_v0')").fetchone()[0])  # type: ignore[index]


def wal_position(c: psycopg.Connection[Any]) -> str:
    """The server's WAL insert position now."""
    return str(c.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])  # type: ignore[index]


def wal_since(c: psycopg.Connection[Any], lsn: str) -> int:
    """The bytes of WAL the whole server wrote since ``lsn``."""
    row = c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", (lsn,)).fetchone()
    return int(row[0])  # type: ignore[index]


IDLE, FLOOR = "idle", "beside a sequential scan"
DEFAULT = UpkeepPolicy().rebuild_wal_compression
# Each a rebuild beside the writers, in turn (the order turns each round); the policy's default first.
REBUILDS = {
    f"beside REINDEX CONCURRENTLY ({DEFAULT})": DEFAULT,
    **{f"  the same, WAL {m}": m for m in ("zstd", "lz4", "pglz") if m != DEFAULT},
    "  the same, WAL as the server's": "server",
}
MAIN = next(iter(REBUILDS))


def _round(
    c: psycopg.Connection[Any], writer: Writer, k: int, last: float, out: dict[str, list[Any]]
) -> float:
    """One round: idle for as long as the last rebuild; a plain sequential scan of the table for as
    long (one core busy reading: what any report query costs the writers); then one rebuild of a
    fresh bloated copy per WAL setting, in an order that turns each round."""
    log = get_logger(job="upkeep")
    start = time.monotonic()
    time.sleep(last)
    writer.window(IDLE, k, start)
    start = time.monotonic()
    while time.monotonic() < start + last:
        c.execute("SELECT count(*) FROM bench_items WHERE pad <> 'y'")
    writer.window(FLOOR, k, start)
    phases = list(REBUILDS)
    for n, phase in enumerate(phases[k % len(phases) :] + phases[: k % len(phases)]):
        before, start = wal_position(c), time.monotonic()
        done = rebuild.rebuild(
            c,
            f"bench_items_v{len(REBUILDS) * k + n}",
            "bench_items",
            "bloated",
            schema="public",
            policy=policy().model_copy(update={"rebuild_wal_compression": REBUILDS[phase]}),
            deadline=None,
            log=log,
        )
        writer.window(phase, k, start)
        assert done.status == "rebuilt", done.error
        out[phase].append((done.duration_ms / 1000.0, wal_since(c, before), done.bytes_after or 0))
        # the copy has served: the writers keep no more indexes than the rounds left need
        c.execute(
            sql.SQL("DROP INDEX CONCURRENTLY {}").format(
                sql.Identifier(f"bench_items_v{len(REBUILDS) * k + n}")
            )
        )
        time.sleep(0.2)
    return float(statistics.median(d for d, _, _ in out[MAIN]))


def rebuild_bench(rows: int, rounds: int, deleted_pct: int) -> dict[str, Any]:
    """``rounds`` rounds of idle, a sequential scan, and one REINDEX CONCURRENTLY of a bloated copy
    through upkeep's ``rebuild`` per WAL setting (the first idle window: 2 s)."""
    name = create_db("writers")
    out: dict[str, list[Any]] = {phase: [] for phase in REBUILDS}
    try:
        with psycopg.connect(dsn(name), autocommit=True) as c:
            c.execute("SET max_parallel_workers_per_gather = 0")  # the scan on one core, like a rebuild
            bloated = build_bloated(c, rows, rounds * len(REBUILDS), deleted_pct)
            writer = Writer(name, "bench_items")
            time.sleep(0.5)
            last = 2.0
            for k in range(rounds):
                last = _round(c, writer, k, last, out)
            latencies, waits = writer.finish()
    finally:
        drop_db(name)
    return _report(latencies, waits, out, rows, deleted_pct, bloated)


def _report(
    latencies: dict[tuple[str, int], list[float]],
    waits: dict[str, int],
    out: dict[str, list[Any]],
    rows: int,
    deleted_pct: int,
    bloated: int,
) -> dict[str, Any]:
    """Two readings of the same samples: each round's p95 over that round's idle p95, the median
    over the rounds (the headline: a rebuild is compared with the idle minutes just before it, so
    the machine's drift between rounds stays out), and the p95 of every round's samples pooled."""
    phases = (IDLE, FLOOR, *REBUILDS)
    rounds = sorted({k for _, k in latencies})
    pooled = {p: [ms for k in rounds for ms in latencies[p, k]] for p in phases}
    p95 = {p: pct(pooled[p], 0.95) for p in phases}
    paired = {
        p: statistics.median(pct(latencies[p, k], 0.95) / pct(latencies[IDLE, k], 0.95) for k in rounds)
        for p in phases
    }
    durations = {phase: [d for d, _, _ in out[phase]] for phase in REBUILDS}
    print(
        f"\n2. writers (their own process) beside REINDEX CONCURRENTLY of a bloated index ({rows:,} rows,"
        f" {deleted_pct} % deleted: {bloated / 2**20:.1f} MB -> {min(a for _, _, a in out[MAIN]) / 2**20:.1f} MB);"
        f" {len(rounds)} rounds of idle, a sequential scan, then one rebuild per WAL setting"
    )
    print(
        f"  {'phase':<38} {'n':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'/idle':>6} {'pooled':>6}"
        f" {'rebuild s':>9} {'WAL MB':>6} {'lock waits':>10}"
    )
    for phase in phases:
        values = pooled[phase]
        extra = (
            f"{statistics.median(durations[phase]):>9.2f} {statistics.median(w for _, w, _ in out[phase]) / 2**20:>6.1f}"
            if phase in out
            else f"{'':>9} {'':>6}"
        )
        print(
            f"  {phase:<38} {len(values):>6} {pct(values, 0.5):>7.3f} {p95[phase]:>7.3f} {max(values):>7.1f}"
            f" {paired[phase]:>5.2f}x {p95[phase] / p95[IDLE]:>5.2f}x {extra} {waits.get(phase, 0):>10}"
        )
    ratio, floor = paired[MAIN], paired[FLOOR]
    print(
        f"  p95 beside / idle (median of the rounds): {ratio:.2f}x (target <= 1.2x); pooled {p95[MAIN] / p95[IDLE]:.2f}x;"
        f" the floor (a sequential scan beside them) {floor:.2f}x"
    )
    return {
        "rows": rows,
        "deleted_pct": deleted_pct,
        "index_bytes_before": bloated,
        "wal_compression": DEFAULT,
        "rebuild_s": durations[MAIN],
        "rebuild_s_by_setting": {REBUILDS[phase]: durations[phase] for phase in REBUILDS},
        "wal_bytes": {REBUILDS[phase]: [w for _, w, _ in out[phase]] for phase in REBUILDS},
        "p95_ms": {phase.strip(): round(value, 3) for phase, value in p95.items()},
        "p95_ratio_by_setting": {REBUILDS[phase]: round(paired[phase], 2) for phase in REBUILDS},
        "pooled_p95_ratio_by_setting": {
            REBUILDS[phase]: round(p95[phase] / p95[IDLE], 2) for phase in REBUILDS
        },
        "p95_ratio": round(ratio, 2),
        "floor_ratio": round(floor, 2),
        "lock_wait_samples": waits,
    }


# --------------------------------------------------------------------------- 3. a pass with nothing to do


class TimedCursor(psycopg.Cursor[Any]):
    """Every statement's time as the client sees it, summed on the connection."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TimedCursor:  # type: ignore[override]
        t0 = time.perf_counter()
        try:
            return super().execute(query, params, **kwargs)  # type: ignore[return-value]
        finally:
            self.connection.db_seconds += time.perf_counter() - t0  # type: ignore[attr-defined]


def timed_connection(database: str) -> psycopg.Connection[Any]:
    c = psycopg.connect(dsn(database), autocommit=True, cursor_factory=TimedCursor)
    c.db_seconds = 0.0  # type: ignore[attr-defined]
    return c


def build_many(c: psycopg.Connection[Any], tables: int, partitions: int) -> None:
    for t in range(tables):
        parent = f"bench_t{t:02d}"
        c.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint, ts timestamptz NOT NULL, kind text) PARTITION BY RANGE (ts)"
            ).format(sql.Identifier(parent))
        )
        c.execute(sql.SQL("CREATE INDEX ON {} (ts)").format(sql.Identifier(parent)))
        c.execute(sql.SQL("CREATE INDEX ON {} (kind)").format(sql.Identifier(parent)))
        for m in range(partitions):
            c.execute(
                sql.SQL(
                    "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM"
                    " (date_trunc('month', now()) + make_interval(months => {m}))"
                    " TO (date_trunc('month', now()) + make_interval(months => {m} + 1))"
                ).format(
                    sql.Identifier(f"{parent}_p{m}"),
                    sql.Identifier(parent),
                    m=sql.Literal(m - partitions // 2),
                )
            )
        c.execute(
            sql.SQL(
                "INSERT INTO {} SELECT g, date_trunc('month', now()) + make_interval(months => g %% %(p)s - %(h)s),"
                " 'k' || (g %% 5) FROM generate_series(1, 200) g"
            ).format(sql.Identifier(parent)),
            {"p": partitions, "h": partitions // 2},
        )
    c.execute("VACUUM ANALYZE")


def noop_passes(database: str, passes: int) -> tuple[list[float], list[float], dict[str, Any]]:
    """(database seconds, wall seconds) of each pass after a first one that did the work."""
    pol = policy()
    with timed_connection(database) as c:
        first = run_once(c, pol)
        db_s, wall_s = [], []
        last = first
        for _ in range(passes):
            c.db_seconds = 0.0  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            last = run_once(c, pol)
            wall_s.append(time.perf_counter() - t0)
            db_s.append(c.db_seconds)  # type: ignore[attr-defined]
    work = {
        "analyzed_first": len(first.analyzed),
        "analyzed_after": len(last.analyzed),
        "rebuilt": len(last.rebuilt),
        "parents": len(last.survey.parents),
        "tables": last.survey.tables,
        "survey_ms": last.survey.timings_ms,
    }
    return db_s, wall_s, work


def noop_bench(tables: int, partitions: int, passes: int) -> dict[str, Any]:
    empty = create_db("empty")
    many = create_db("noop")
    try:
        with psycopg.connect(dsn(many), autocommit=True) as c:
            build_many(c, tables, partitions)
        ref_db, _ref_wall, _ = noop_passes(empty, passes)
        db_s, wall_s, work = noop_passes(many, passes)
    finally:
        drop_db(empty)
        drop_db(many)
    median = statistics.median(db_s)
    print(
        f"\n3. an upkeep pass with nothing to do over {tables} partitioned tables ({tables * partitions} partitions,"
        f" {work['tables']} tables in scope), median of {passes}"
    )
    print(
        f"  database time {median:.3f} s (min {min(db_s):.3f}, max {max(db_s):.3f}); wall {statistics.median(wall_s):.3f} s;"
        f" an empty database's pass {statistics.median(ref_db):.3f} s; target <= 0.2 s"
    )
    print(
        f"  analyzed by the first pass {work['analyzed_first']}, by the measured ones {work['analyzed_after']},"
        f" rebuilt {work['rebuilt']}"
    )
    print(
        "  survey parts (ms, last pass): " + ", ".join(f"{k} {v:.1f}" for k, v in work["survey_ms"].items())
    )
    return {
        "tables": tables,
        "partitions": tables * partitions,
        "db_s": db_s,
        "median_db_s": round(median, 4),
        "median_wall_s": round(statistics.median(wall_s), 4),
        "empty_db_median_s": round(statistics.median(ref_db), 4),
        **{k: v for k, v in work.items() if k != "survey_ms"},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--bloat-rows", type=int, default=4_000_000)
    parser.add_argument("--deleted-pct", type=int, default=50, choices=range(1, 100), metavar="1..99")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=9)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated: planner,writers,noop")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    wanted = [w for w in args.only.split(",") if w] or ["planner", "writers", "noop"]
    if "planner" in wanted:
        planner_bench(args.rows, args.partitions)
    if "writers" in wanted:
        rebuild_bench(args.bloat_rows, args.rounds, args.deleted_pct)
    if "noop" in wanted:
        noop_bench(args.tables, args.partitions, args.passes)


if __name__ == "__main__":
    main()
