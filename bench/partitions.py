"""Benchmark: pgtender's partitions job vs pg_partman 4.7 and hand-written DDL; writer impact.

    python bench/partitions.py [--tables 50] [--months 9] [--trials 3] [--seconds 5] [--no-partman]

1. Maintenance core: 50 monthly-partitioned tables (shaped like learning_events, a DEFAULT
   partition each) that have the current and next month; every strategy brings them to the same
   horizon (``--months`` more partitions each, 450 in all):
     - pg_partman ``CALL partman.run_maintenance_proc()`` (premake raised, infinite_time_partitions on)
     - hand-written ``CREATE TABLE … PARTITION OF``, one transaction per table
     - pgtender ``partitions.maintain_all`` (the job's work in one call, no Prefect, no lock or
       ledger: catalog, LIKE + ATTACH per partition under lock_timeout, metrics)
   then each one's no-op pass (nothing left to create). Median seconds of ``--trials`` fresh clones.
2. Writer impact: single-row inserts on their own connection into one of the tables; latency
   p50/p95/p99/max while idle, while pgtender passes run back to back with nothing to do, during
   pgtender creation passes (150 partitions each) and during the same creation with
   ``CREATE TABLE … PARTITION OF``.
3. ``--prefect``: a no-op ``partitions`` flow run vs ``maintain_all`` and vs an empty flow run (Prefect's
   own cost); pgtender's part over the core from the run's ledger row.

pg_partman comes from Debian's ``postgresql-15-partman`` (installed with apt-get when missing and
running as root; ``--no-partman`` skips it). PGTENDER_BENCH_DSN names the server (default
postgresql://postgres@127.0.0.1:5432/postgres); databases pgtender_bench_part_* are created and dropped.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import structlog
from partitions_common import (
    build_template,
    clone,
    drop_db,
    dsn,
    ensure_partman,
    month,
    partition_of,
    policy,
    setup_plain,
    table_name,
    timed,
)
from partitions_core import core_bench
from psycopg import sql

from flows import partitions

# ---------------------------------------------------------------------------  2. writer impact


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


def writer_impact(template: str, n_tables: int, seconds: float, lock_timeout_ms: int) -> dict[str, Any]:
    db = clone(template, "writer")
    try:
        setup_plain(db, n_tables)
        with psycopg.connect(dsn(db), autocommit=True) as c:
            partitions.maintain_all(c, policy(n_tables, 1))  # steady state
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
                partitions.maintain_all(c, steady)
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
                partitions.maintain_all(c, steady)
                paced += 1
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            writer.phase = None
            premake = 1
            creation_time = 0.0
            while creation_time < seconds:
                premake += 3
                pol = policy(n_tables, premake).model_copy(update={"lock_timeout_ms": lock_timeout_ms})
                writer.phase = "pgtender creation (LIKE+ATTACH)"
                creation_time += timed(lambda pol=pol: partitions.maintain_all(c, pol))  # type: ignore[misc]
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
        return {
            phase: {
                "n": len(values),
                "p50_ms": round(pct(values, 0.5), 3),
                "p95_ms": round(pct(values, 0.95), 3),
                "p99_ms": round(pct(values, 0.99), 3),
                "max_ms": round(max(values), 3),
                "p95_ratio": round(pct(values, 0.95) / idle_p95, 2),
                "lock_wait_samples": sum(sampler.samples.get(phase, [])),
            }
            for phase, values in writer.samples.items()
        }
    finally:
        drop_db(db)


# --------------------------------------------------------------------------- 3. Prefect fixed cost


def prefect_cost(template: str, n_tables: int, runs: int) -> dict[str, Any]:
    """One no-op ``partitions`` flow run over ``n_tables`` tables against the same work without Prefect
    (``maintain_all``) and an empty flow run on the same server, interleaved; the run's own time is its
    ledger row (start to finish: the catalog, the DEFAULT counts, the task run, every table, the
    metrics insert). Prefect's fixed cost of a flow run is the empty flow's; pgtender's part over
    the core is the ledger time minus ``maintain_all``."""
    import tempfile

    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    from flows.core import db as flows_db
    from flows.core.telemetry import disable_telemetry

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
            partitions.maintain_all(c, policy(n_tables, 1))
            core = statistics.median(
                timed(lambda: partitions.maintain_all(c, policy(n_tables, 1))) for _ in range(runs)
            )

        @flow(name="empty")
        def empty_flow() -> int:
            return 0

        with prefect_test_harness(server_startup_timeout=120):
            from flows.edge.flows import flow_for
            from flows.registry import REGISTRY

            partitions_flow = flow_for(REGISTRY.get("partitions"))
            partitions_flow()
            empty_flow()
            flow_times, empty_times = [], []
            for _ in range(runs):
                empty_times.append(timed(empty_flow))
                flow_times.append(timed(partitions_flow))
        flows_db.close_pools()
        with psycopg.connect(dsn(database), autocommit=True) as c:
            rows = c.execute(
                "SELECT extract(epoch FROM finished_at - started_at)::float8 FROM pgtender_operations"
                " WHERE job = 'partitions' AND status = 'completed' ORDER BY started_at DESC LIMIT %s",
                (runs,),
            ).fetchall()
        run_s = statistics.median(r[0] for r in rows)
        out = {
            "tables": n_tables,
            "runs": runs,
            "flow_s": statistics.median(flow_times),
            "empty_flow_s": statistics.median(empty_times),
            "core_s": core,
            "run_s": run_s,
            "over_core_s": run_s - core,
        }
        print(
            f"\nPrefect: no-op partitions flow run over {n_tables} tables {out['flow_s']:.3f} s"
            f" (an empty flow run on the same server {out['empty_flow_s']:.3f} s: Prefect's own cost)"
        )
        print(
            f"  the run itself (ledger start to finish) {run_s:.3f} s vs maintain_all {core:.3f} s:"
            f" pgtender's part over the core {out['over_core_s']:.3f} s"
        )
        return out
    finally:
        drop_db(database)


def rescue_bench(template: str, rows: int, seconds: float) -> dict[str, Any]:
    """Reader p95 during a DEFAULT rescue of ``rows`` rows vs idle (bench/partitions_rescue.py)."""
    import partitions_rescue

    db = clone(template, "rescue")
    try:
        setup_plain(db, 1)
        t = table_name(0)

        def left() -> int:
            with psycopg.connect(dsn(db), autocommit=True) as c:
                row = c.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t + "_default")))
                return int(row.fetchone()[0])  # type: ignore[index]

        pol = policy(1, 1).model_copy(update={"lock_timeout_ms": 1000})
        return partitions_rescue.rescue_readers(
            dsn(db), t, rows, [month(-3), month(-2), month(-1)], pol, seconds, left
        )
    finally:
        drop_db(db)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--months", type=int, default=9)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=5, help="interleaved slices of the tables per trial")
    parser.add_argument("--noops", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--lock-timeout-ms", type=int, default=1000)
    parser.add_argument("--rescue-rows", type=int, default=600_000, help="0: skip the rescue reader bench")
    parser.add_argument("--no-partman", action="store_true")
    parser.add_argument("--no-writer", action="store_true")
    parser.add_argument("--prefect", action="store_true", help="part 3: a flow run's cost over the core")
    parser.add_argument("--prefect-runs", type=int, default=7)
    parser.add_argument("--no-core", action="store_true", help="skip part 1 (maintenance core)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every part asked for; returns the figures (bench/run.py writes them to bench/results/)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    use_partman = not args.no_partman and ensure_partman()
    template = build_template(args.tables, use_partman)
    figures: dict[str, Any] = {"args": vars(args), "pg_partman": use_partman}
    try:
        if not args.no_core:
            figures["core"] = core_bench(template, args, use_partman)
        if not args.no_writer:
            figures["writer"] = writer_impact(template, args.tables, args.seconds, args.lock_timeout_ms)
        if args.rescue_rows:
            figures["rescue"] = rescue_bench(template, args.rescue_rows, args.seconds)
        if args.prefect:
            figures["prefect"] = prefect_cost(template, args.tables, args.prefect_runs)
    finally:
        drop_db(template)
    return figures


def main() -> None:
    run(parse_args())


if __name__ == "__main__":
    main()
