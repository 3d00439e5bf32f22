"""Benchmark: pgtender's partitions job vs pg_partman 4.7 and hand-written DDL; writer impact.

    python bench/partitions.py [--tables 50] [--months 9] [--trials 3] [--seconds 5] [--no-partman]

1. Maintenance core: 50 monthly-partitioned tables (shaped like learning_events, a DEFAULT
   partition each) that have the current and next month; every strategy brings them to the same
   horizon (``--months`` more partitions each, 450 in all):
     - pg_partman ``CALL partman.run_maintenance_proc()`` (premake raised, infinite_time_partitions on)
     - hand-written ``CREATE TABLE … PARTITION OF``, one transaction per table
     - pgtender ``partitions.run_once`` (the flow's work without Prefect: advisory lock, catalog,
       LIKE + ATTACH per partition under lock_timeout, metrics)
   then each one's no-op pass (nothing left to create). Median seconds of ``--trials`` fresh clones.
2. Writer impact: single-row inserts on their own connection into one of the tables; latency
   p50/p95/p99/max while idle, while pgtender passes run back to back with nothing to do, during
   pgtender creation passes (150 partitions each) and during the same creation with
   ``CREATE TABLE … PARTITION OF``.
3. ``--prefect``: the fixed cost of one Prefect flow run (partitions_flow no-op vs run_once no-op).

pg_partman comes from Debian's ``postgresql-15-partman`` (installed with apt-get when missing and
running as root; ``--no-partman`` skips it). PGTENDER_BENCH_DSN names the server (default
postgresql://postgres@127.0.0.1:5432/postgres); databases pgtender_bench_part_* are created and dropped.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import structlog
from psycopg import conninfo, sql

from flows import partitions
from flows.core import intervals, migrations
from flows.core.partition_policy import PartitionsPolicy

ADMIN = os.environ.get("PGTENDER_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PARTMAN_CONTROL = "/usr/share/postgresql/15/extension/pg_partman.control"


def dsn(name: str) -> str:
    return conninfo.make_conninfo(ADMIN, dbname=name)


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(ADMIN, autocommit=True)


def drop_db(name: str) -> None:
    with admin() as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def clone(template: str, tag: str) -> str:
    name = f"pgtender_bench_part_{tag}"
    drop_db(name)
    with admin() as c:
        c.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return name


def month(offset: int) -> datetime:
    base = intervals.floor_to(datetime.now(UTC), "month")
    return intervals.add_intervals(base, "month", offset)


def ensure_partman() -> bool:
    if Path(PARTMAN_CONTROL).exists():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("pg_partman is not installed and cannot be installed here (need root and apt-get)")
        return False
    print("installing postgresql-15-partman with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql-15-partman"], check=True, env=env)
    return Path(PARTMAN_CONTROL).exists()


def table_name(i: int) -> str:
    return f"bench_t{i:02d}"


def build_template(n_tables: int, with_partman: bool) -> str:
    """Migrated pgtender schema + ``n_tables`` bare partitioned parents (no partitions yet)."""
    name = "pgtender_bench_part_tpl"
    drop_db(name)
    with admin() as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dsn(name), autocommit=True) as c:
        migrations.migrate(c)
        if with_partman:
            c.execute("CREATE SCHEMA partman")
            c.execute("CREATE EXTENSION pg_partman SCHEMA partman")
        for i in range(n_tables):
            t = sql.Identifier(table_name(i))
            c.execute(
                sql.SQL(
                    "CREATE TABLE {} (id uuid NOT NULL DEFAULT gen_random_uuid(), ts timestamptz NOT NULL,"
                    " event_type text NOT NULL CHECK (event_type <> ''), session_id uuid, payload jsonb,"
                    " PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)"
                ).format(t)
            )
            c.execute(sql.SQL("CREATE INDEX ON {} (ts)").format(t))
            c.execute(sql.SQL("CREATE INDEX ON {} (event_type, ts)").format(t))
            c.execute(sql.SQL("CREATE INDEX ON {} (session_id) WHERE session_id IS NOT NULL").format(t))
    return name


def setup_plain(db: str, n_tables: int) -> None:
    """DEFAULT + current + next month partitions, as the migration would leave them."""
    with psycopg.connect(dsn(db), autocommit=True) as c:
        for i in range(n_tables):
            t = table_name(i)
            c.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
                    sql.Identifier(t + "_default"), sql.Identifier(t)
                )
            )
            for m in (0, 1):
                c.execute(partition_of(t, m))


def partition_of(t: str, m: int) -> sql.Composed:
    return sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
        sql.Identifier(intervals.partition_name(t, month(m))),
        sql.Identifier(t),
        sql.Literal(month(m)),
        sql.Literal(month(m + 1)),
    )


def policy(n_tables: int, premake: int) -> PartitionsPolicy:
    tables: dict[str, Any] = {
        table_name(i): {"premake": premake, "retention": "none"} for i in range(n_tables)
    }
    tables.update({"learning_events": {"enabled": False}, "system_performance_metrics": {"enabled": False}})
    return PartitionsPolicy.model_validate({"tables": tables})


def count_partitions(db: str) -> int:
    with psycopg.connect(dsn(db), autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE p.relname LIKE 'bench\\_t%' AND c.relkind = 'r'"
        ).fetchone()
        assert row is not None
        return int(row[0])


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- 1. maintenance core


def run_partman(template: str, n_tables: int, months: int, noops: int) -> tuple[float, float, int]:
    db = clone(template, "partman")
    try:
        with psycopg.connect(dsn(db), autocommit=True) as c:
            for i in range(n_tables):
                c.execute(
                    "SELECT partman.create_parent(%s, 'ts', 'native', 'monthly', p_premake := 1,"
                    " p_start_partition := %s, p_jobmon := false)",
                    (f"public.{table_name(i)}", month(0).strftime("%Y-%m-%d")),
                )
            c.execute(
                # partman's premake P keeps partitions through current + P + 1 (measured on 4.7.2)
                "UPDATE partman.part_config SET premake = %s, infinite_time_partitions = true",
                (months,),
            )
            before = count_partitions(db)
            create = timed(lambda: c.execute("CALL partman.run_maintenance_proc(p_jobmon := false)"))
            created = count_partitions(db) - before
            noop = statistics.median(
                timed(lambda: c.execute("CALL partman.run_maintenance_proc(p_jobmon := false)"))
                for _ in range(noops)
            )
        return create, noop, created
    finally:
        drop_db(db)


def run_hand(template: str, n_tables: int, months: int) -> tuple[float, int]:
    db = clone(template, "hand")
    try:
        setup_plain(db, n_tables)
        before = count_partitions(db)
        with psycopg.connect(dsn(db), autocommit=True) as c:

            def work() -> None:
                for i in range(n_tables):
                    with c.transaction():
                        for m in range(2, 2 + months):
                            c.execute(partition_of(table_name(i), m))

            elapsed = timed(work)
        return elapsed, count_partitions(db) - before
    finally:
        drop_db(db)


def run_pgtender(template: str, n_tables: int, months: int, noops: int) -> tuple[float, float, int]:
    db = clone(template, "pgtender")
    try:
        setup_plain(db, n_tables)
        before = count_partitions(db)
        pol = policy(n_tables, months + 1)
        with psycopg.connect(dsn(db), autocommit=True) as c:
            create = timed(lambda: partitions.run_once(c, pol))
            created = count_partitions(db) - before
            noop = statistics.median(timed(lambda: partitions.run_once(c, pol)) for _ in range(noops))
        return create, noop, created
    finally:
        drop_db(db)


# --------------------------------------------------------------------------- 2. writer impact


class Writer(threading.Thread):
    """Single-row inserts on their own connection; latencies (ms) recorded under the current phase."""

    def __init__(self, db: str, table: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(dsn(db), autocommit=True)
        self.table = sql.Identifier(table)
        self.phase: str | None = None
        self.samples: dict[str, list[float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        query = sql.SQL("INSERT INTO {} (ts, event_type) VALUES (now(), 'w')").format(self.table)
        while not self.stop.is_set():
            phase = self.phase
            t0 = time.perf_counter()
            self.conn.execute(query)
            elapsed = (time.perf_counter() - t0) * 1000
            if phase is not None and phase == self.phase:
                self.samples.setdefault(phase, []).append(elapsed)
        self.conn.close()


class LockWaitSampler(threading.Thread):
    """Every ~5 ms: is the writer's backend waiting on a heavyweight lock? Counted per phase."""

    def __init__(self, db: str, writer: Writer) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(dsn(db), autocommit=True)
        self.writer = writer
        self.pid = writer.conn.info.backend_pid
        self.samples: dict[str, list[int]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        query = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
        while not self.stop.is_set():
            phase = self.writer.phase
            row = self.conn.execute(query, (self.pid,)).fetchone()
            if phase is not None and row is not None:
                self.samples.setdefault(phase, []).append(int(row[0]))
            time.sleep(0.005)
        self.conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def writer_impact(template: str, n_tables: int, seconds: float, lock_timeout_ms: int) -> None:
    db = clone(template, "writer")
    try:
        setup_plain(db, n_tables)
        with psycopg.connect(dsn(db), autocommit=True) as c:
            partitions.run_once(c, policy(n_tables, 1))  # steady state
            writer = Writer(db, table_name(0))
            writer.start()
            sampler = LockWaitSampler(db, writer)
            sampler.start()
            time.sleep(0.5)
            writer.phase = "idle"
            time.sleep(seconds)
            writer.phase = None
            steady = policy(n_tables, 1).model_copy(update={"lock_timeout_ms": lock_timeout_ms})
            writer.phase = "steady (no-op passes)"
            t_end = time.monotonic() + seconds
            passes = 0
            while time.monotonic() < t_end:
                partitions.run_once(c, steady)
                passes += 1
            writer.phase = None
            # The same passes at a cadence (one a second) instead of back to back: on 2 cores a
            # tight loop of passes competes with the writer for CPU even though it takes no lock
            # the writer waits on; paced passes show what a pass itself costs the writer.
            writer.phase = "steady (one no-op pass a second)"
            t_end = time.monotonic() + seconds
            paced = 0
            while time.monotonic() < t_end:
                started = time.monotonic()
                partitions.run_once(c, steady)
                paced += 1
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            writer.phase = None
            premake = 1
            creation_time = 0.0
            while creation_time < seconds:
                premake += 3
                pol = policy(n_tables, premake).model_copy(update={"lock_timeout_ms": lock_timeout_ms})
                writer.phase = "pgtender creation (LIKE+ATTACH)"
                creation_time += timed(lambda pol=pol: partitions.run_once(c, pol))  # type: ignore[misc]
                writer.phase = None
            offset = premake + 1
            partition_of_time = 0.0
            while partition_of_time < seconds:
                writer.phase = "CREATE TABLE ... PARTITION OF"

                def create(first: int = offset) -> None:
                    for i in range(n_tables):
                        with c.transaction():
                            for m in range(first, first + 3):
                                c.execute(partition_of(table_name(i), m))

                partition_of_time += timed(create)
                writer.phase = None
                offset += 3
            writer.stop.set()
            sampler.stop.set()
            writer.join()
            sampler.join()
        idle = writer.samples["idle"]
        idle_p95 = pct(idle, 0.95)
        print(f"\nwriter impact: single-row inserts into {table_name(0)}; lock_timeout {lock_timeout_ms} ms")
        print(
            f"  steady state: {passes} no-op passes back to back, then {paced} paced, over {n_tables}"
            f" tables in {seconds:.0f} s each"
        )
        cols = ("n", "p50 ms", "p95 ms", "p99 ms", "max ms")
        print(
            f"  {'phase':<34} {cols[0]:>6} "
            + " ".join(f"{c:>8}" for c in cols[1:])
            + f" {'p95/idle':>9} {'lock-wait samples':>18}"
        )
        for phase, values in writer.samples.items():
            waits = sampler.samples.get(phase, [])
            print(
                f"  {phase:<34} {len(values):>6} {pct(values, 0.5):>8.3f} {pct(values, 0.95):>8.3f}"
                f" {pct(values, 0.99):>8.3f} {max(values):>8.3f} {pct(values, 0.95) / idle_p95:>8.2f}x"
                f" {sum(waits):>8} of {len(waits):<7}"
            )
        print("  (lock-wait samples: how often, polled every ~5 ms, the writer was waiting on a lock)")
    finally:
        drop_db(db)


# --------------------------------------------------------------------------- 3. Prefect fixed cost


def prefect_cost(template: str, n_tables: int, runs: int) -> None:
    import tempfile

    from prefect.testing.utilities import prefect_test_harness

    from flows.core import db as flows_db
    from flows.core.runtime import disable_telemetry

    disable_telemetry()
    database = clone(template, "prefect")
    try:
        setup_plain(database, n_tables)
        config = Path(tempfile.mkdtemp()) / "pgtender.toml"
        lines = [
            f'[partitions.tables.{table_name(i)}]\npremake = 1\nretention = "none"\n' for i in range(n_tables)
        ]
        lines.append("[partitions.tables.learning_events]\nenabled = false\n")
        lines.append("[partitions.tables.system_performance_metrics]\nenabled = false\n")
        config.write_text("".join(lines))
        os.environ["PGTENDER_CONFIG"] = str(config)
        os.environ["PGTENDER_DATABASE_URL"] = dsn(database)
        with psycopg.connect(dsn(database), autocommit=True) as c:
            partitions.run_once(c, policy(n_tables, 1))
            core = statistics.median(
                timed(lambda: partitions.run_once(c, policy(n_tables, 1))) for _ in range(runs)
            )
        with prefect_test_harness(server_startup_timeout=120):
            from flows.partitions import partitions_flow

            partitions_flow()
            flow_times = [timed(partitions_flow) for _ in range(runs)]
        flows_db.close_pools()
        full = statistics.median(flow_times)
        print(f"\nPrefect: partitions_flow no-op {full:.3f} s vs run_once no-op {core:.3f} s")
        print(f"  fixed per-flow cost (flow run + {n_tables} task runs): {full - core:.3f} s")
    finally:
        drop_db(database)


def print_core(
    med: dict[str, float], created: dict[str, int], args: argparse.Namespace, use_partman: bool
) -> None:
    print(
        f"maintenance core: {args.tables} tables, {args.months} new monthly partitions each;"
        f" median of {args.trials}"
    )
    print(f"  partitions created: {created}")
    if use_partman:
        base = med["partman"]
        print(f"  pg_partman run_maintenance_proc   {base:8.3f} s   1.00x")
        print(f"  hand-written PARTITION OF         {med['hand']:8.3f} s   {med['hand'] / base:.2f}x")
        print(
            f"  pgtender run_once                 {med['ours']:8.3f} s   {med['ours'] / base:.2f}x"
            "  (target <= 0.85x)"
        )
        print(f"  pg_partman no-op pass             {med['partman_noop']:8.3f} s   1.00x")
        ratio = med["ours_noop"] / med["partman_noop"]
        print(
            f"  pgtender no-op pass               {med['ours_noop']:8.3f} s   {ratio:.2f}x  (target <= 0.5x)"
        )
    else:
        print(f"  hand-written PARTITION OF         {med['hand']:8.3f} s   1.00x")
        print(f"  pgtender run_once                 {med['ours']:8.3f} s   {med['ours'] / med['hand']:.2f}x")
        print(f"  pgtender no-op pass               {med['ours_noop']:8.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--months", type=int, default=9)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--noops", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--lock-timeout-ms", type=int, default=1000)
    parser.add_argument("--no-partman", action="store_true")
    parser.add_argument("--no-writer", action="store_true")
    parser.add_argument("--prefect", action="store_true")
    parser.add_argument("--no-core", action="store_true", help="skip part 1 (maintenance core)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    use_partman = not args.no_partman and ensure_partman()
    template = build_template(args.tables, use_partman)
    try:
        results: dict[str, list[float]] = {
            "partman": [],
            "partman_noop": [],
            "hand": [],
            "ours": [],
            "ours_noop": [],
        }
        created: dict[str, int] = {}
        for trial in range(0 if args.no_core else args.trials):
            order = ["partman", "hand", "ours"] if use_partman else ["hand", "ours"]
            order = order[trial % len(order) :] + order[: trial % len(order)]
            for kind in order:
                if kind == "partman":
                    t, noop, n = run_partman(template, args.tables, args.months, args.noops)
                    results["partman"].append(t)
                    results["partman_noop"].append(noop)
                elif kind == "hand":
                    t, n = run_hand(template, args.tables, args.months)
                    results["hand"].append(t)
                else:
                    t, noop, n = run_pgtender(template, args.tables, args.months, args.noops)
                    results["ours"].append(t)
                    results["ours_noop"].append(noop)
                created[kind] = n
        if not args.no_core:
            med = {k: statistics.median(v) for k, v in results.items() if v}
            print_core(med, created, args, use_partman)
        if not args.no_writer:
            writer_impact(template, args.tables, args.seconds, args.lock_timeout_ms)
        if args.prefect:
            prefect_cost(template, args.tables, 3)
    finally:
        drop_db(template)


if __name__ == "__main__":
    main()
