"""Benchmark: pgtender retention (drop mode) vs the raw DETACH + DROP statements, and vs DELETE.

    python bench/retention.py [--sizes 1000000,10000000] [--trials 3]

For each size, one template database holds a table with 6 expired monthly partitions (the rows
spread over them) plus the current and future ones; every trial runs on a fresh clone of it
(CREATE DATABASE … TEMPLATE), so each strategy starts from identical data. Printed: median
seconds per strategy and pgtender's ratio to the raw statements (target <= 1.2x).

Uses PGTENDER_BENCH_DSN (default postgresql://postgres@127.0.0.1:5432/postgres); creates and drops
its own databases named pgtender_bench_ret_*.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import structlog
from psycopg import conninfo, sql

from flows.core.logs import get_logger
from flows.core.partitioning import catalog, intervals
from flows.core.policy.partitions import PartitionsPolicy, RetentionPolicy
from flows.retention import partitioned

ADMIN = os.environ.get("PGTENDER_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLE = "bench_events"
EXPIRED_MONTHS = 6


def dsn(name: str) -> str:
    return conninfo.make_conninfo(ADMIN, dbname=name)


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(ADMIN, autocommit=True)


def drop_db(name: str) -> None:
    with admin() as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def month_start(offset: int) -> datetime:
    now = datetime.now(UTC)
    return intervals.add_intervals(intervals.floor_to(now, "month"), "month", offset)


def build_template(rows: int) -> str:
    name = f"pgtender_bench_ret_tpl_{rows}"
    drop_db(name)
    with admin() as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dsn(name), autocommit=True) as c:
        c.execute(
            "CREATE TABLE bench_events (id bigint NOT NULL, ts timestamptz NOT NULL, kind text NOT NULL,"
            " payload jsonb, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)"
        )
        c.execute("CREATE INDEX ON bench_events (ts)")
        c.execute("CREATE INDEX ON bench_events (kind, ts)")
        c.execute("CREATE TABLE bench_events_default PARTITION OF bench_events DEFAULT")
        for m in range(-EXPIRED_MONTHS - 1, 3):
            lo, hi = month_start(m), month_start(m + 1)
            c.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF bench_events FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(intervals.partition_name(TABLE, lo)), sql.Literal(lo), sql.Literal(hi)
                )
            )
        # rows spread evenly over the 6 oldest months (all of them expire with retention "1 month")
        start, end = month_start(-EXPIRED_MONTHS - 1), month_start(-1)
        c.execute(
            "INSERT INTO bench_events (id, ts, kind, payload)"
            " SELECT g, %s::timestamptz + (%s::timestamptz - %s::timestamptz) * (g::float8 / %s),"
            " 'k' || (g %% 7), jsonb_build_object('g', g)"
            " FROM generate_series(0, %s - 1) g",
            (start, end, start, rows, rows),
        )
        c.execute("VACUUM ANALYZE bench_events")
    return name


def clone(template: str, tag: str) -> str:
    name = f"pgtender_bench_ret_{tag}"
    drop_db(name)
    with admin() as c:
        c.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return name


def expired_names(conn: psycopg.Connection[Any]) -> list[str]:
    cutoff = month_start(-1)
    return [
        intervals.partition_name(TABLE, month_start(m))
        for m in range(-EXPIRED_MONTHS - 1, 0)
        if month_start(m + 1) <= cutoff
    ]


def raw_ddl(db: str, *, one_transaction: bool) -> float:
    """The bare statements: DETACH + DROP per partition, a commit each (or one for all)."""
    with psycopg.connect(dsn(db), autocommit=True) as c:
        names = expired_names(c)
        t0 = time.perf_counter()
        if one_transaction:
            with c.transaction():
                for n in names:
                    c.execute(
                        sql.SQL("ALTER TABLE bench_events DETACH PARTITION {}").format(sql.Identifier(n))
                    )
                    c.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(n)))
        else:
            for n in names:
                with c.transaction():
                    c.execute(
                        sql.SQL("ALTER TABLE bench_events DETACH PARTITION {}").format(sql.Identifier(n))
                    )
                    c.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(n)))
        return time.perf_counter() - t0


def pgtender(db: str) -> tuple[float, int]:
    pol = PartitionsPolicy.model_validate(
        {"tables": {TABLE: {"retention": "1 month", "premake": 1, "archive": "drop"},
                    "learning_events": {"enabled": False}, "system_performance_metrics": {"enabled": False}}}
    )  # fmt: skip
    rp = RetentionPolicy()
    with psycopg.connect(dsn(db), autocommit=True) as c:
        t0 = time.perf_counter()
        (target,) = catalog.resolve_targets(c, pol.enabled_tables())
        out = partitioned.expire_partitions(
            c, target, rp, now=datetime.now(UTC), dump_dir=Path("/nonexistent"), log=get_logger(job="bench")
        )
        elapsed = time.perf_counter() - t0
    assert len(out.actions) == EXPIRED_MONTHS, out.actions
    return elapsed, out.rows_removed


def delete(db: str) -> tuple[float, float]:
    with psycopg.connect(dsn(db), autocommit=True) as c:
        t0 = time.perf_counter()
        c.execute("DELETE FROM bench_events WHERE ts < %s", (month_start(-1),))
        t1 = time.perf_counter()
        c.execute("VACUUM bench_events")
        return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"retention of {EXPIRED_MONTHS} monthly partitions; median of {args.trials} trials per strategy")
    print("raw/txn = DETACH+DROP with a commit per partition; raw/1 = the same statements in one transaction")
    print(
        f"{'rows':>10} {'raw/txn':>9} {'raw/1':>9} {'pgtender':>9} {'vs raw/txn':>10} {'vs raw/1':>9}"
        f" {'DELETE':>9} {'+VACUUM':>9}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        template = build_template(size)
        times: dict[str, list[float]] = {"raw": [], "raw1": [], "ours": [], "delete": [], "vacuum": []}
        removed = 0
        try:
            for trial in range(args.trials):
                # rotate the order so no strategy always runs on a warmer cache
                order = ["raw", "raw1", "ours"]
                order = order[trial % 3 :] + order[: trial % 3]
                for kind in order:
                    db = clone(template, kind)
                    try:
                        if kind == "ours":
                            elapsed, removed = pgtender(db)
                        else:
                            elapsed = raw_ddl(db, one_transaction=kind == "raw1")
                        times[kind].append(elapsed)
                    finally:
                        drop_db(db)
                db = clone(template, "delete")
                try:
                    d, v = delete(db)
                    times["delete"].append(d)
                    times["vacuum"].append(v)
                finally:
                    drop_db(db)
        finally:
            drop_db(template)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{size:>10} {med['raw']:>8.3f}s {med['raw1']:>8.3f}s {med['ours']:>8.3f}s"
            f" {med['ours'] / med['raw']:>9.2f}x {med['ours'] / med['raw1']:>8.2f}x"
            f" {med['delete']:>8.3f}s {med['vacuum']:>8.3f}s   (pgtender: {removed} rows, planner estimate)"
        )


if __name__ == "__main__":
    main()
