"""Benchmark: database time of one full health run, and the views' read/write side effects.

    .venv/bin/python bench/health.py [--dsn URL] [--days 30] [--rows-per-day 1000000] [--runs 20]
                                     [--views] [--keep]

Creates a database on the server (default: $PGTENDER_TEST_DATABASE_URL, else the local server),
migrates it, loads ``days`` x ``rows-per-day`` learning events ending now (plus some model
evaluations, query logs, resource samples and ledger rows, so that every probe computes rather than
skips), then times every probe of the health run. "Database time" is the wall time of each probe's
statements seen by the client over a local connection (an upper bound: it includes round trips).
The baseline is the same health run on a freshly migrated, empty database measured in the same
invocation, so the ratio shows what the data volume costs.

With ``--views``: p95 read latency of each dashboard query on its materialized view vs the same
aggregate on the base table, and writer p95 (single-row inserts into learning_events) while the
views refresh in a loop vs idle.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg import conninfo, sql

from flows import db, health, migrations, settings, views
from flows.logs import configure_logging
from flows.serving import SCHEDULES


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def create_db(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    return conninfo.make_conninfo(server, dbname=name)


def drop_db(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def load(conn: psycopg.Connection[Any], days: int, rows_per_day: int) -> None:
    started = time.perf_counter()
    for d in range(days, 0, -1):
        conn.execute(
            """
            INSERT INTO learning_events (occurred_at, ingested_at, event_type, session_id, user_id)
            SELECT t, t + interval '2 seconds', (ARRAY['click','view','submit','error'])[1 + g %% 4],
                   NULL, 'u' || (g %% 5000)
              FROM generate_series(1, %(n)s) g,
                   LATERAL (SELECT now() - make_interval(days => %(d)s)
                                   + (g::float8 / %(n)s) * interval '1 day' AS t) s
            """,
            {"n": rows_per_day, "d": d},
        )
        print(
            f"  loaded day -{d}: {(days - d + 1) * rows_per_day:,} rows,"
            f" {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    conn.execute(
        """
        INSERT INTO ml_models (name, version, model_type)
        SELECT 'm' || g, 'v1', 'classifier' FROM generate_series(1, 20) g;
        INSERT INTO model_evaluations (model_id, metric_name, metric_value, is_baseline, evaluated_at)
        SELECT m.id, 'accuracy', 0.8 + random() * 0.1, g = 1, now() - make_interval(days => 30 - g)
          FROM ml_models m, generate_series(1, 30) g;
        INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms, baseline_ms)
        SELECT now() - make_interval(mins => g % 10000), 'q' || (g % 50), 5 + random() * 10,
               CASE WHEN g % 2 = 0 THEN 10 END
          FROM generate_series(1, 100000) g;
        INSERT INTO resource_utilization (measured_at, resource_type, resource_name, host, utilization_pct)
        SELECT now() - make_interval(mins => g), (ARRAY['cpu','memory','disk'])[1 + g % 3], 'r' || (g % 3),
               'db1', random() * 80
          FROM generate_series(1, 20000) g;
        INSERT INTO pgtender_operations (job, status, started_at, finished_at)
        SELECT j, 'completed', now() - make_interval(mins => g * 5), now() - make_interval(mins => g * 5)
          FROM unnest(ARRAY['views','health','capacity','partitions','retention','quality']) j,
               generate_series(1, 2000) g;
        """
    )
    conn.execute("VACUUM ANALYZE")
    print(f"  loaded and analyzed in {time.perf_counter() - started:.0f} s", flush=True)


def health_runs(dsn: str, runs: int) -> tuple[float, list[float], dict[str, float]]:
    policy = settings.HealthPolicy()
    totals: list[float] = []
    per_probe: dict[str, list[float]] = {}
    with db.connect(dsn, autocommit=True) as conn:
        cold = health.run_probes(conn, policy, now=health.db_now(conn), schedules=SCHEDULES).db_ms
        for _ in range(runs):
            run = health.run_probes(conn, policy, now=health.db_now(conn), schedules=SCHEDULES)
            totals.append(run.db_ms)
            for name, ms in run.probe_ms.items():
                per_probe.setdefault(name, []).append(ms)
    return cold, totals, {k: statistics.median(v) for k, v in per_probe.items()}


DASHBOARD = {
    "mv_daily_learning_events": (
        "SELECT day, sum(event_count) FROM mv_daily_learning_events"
        " WHERE day >= (now() AT TIME ZONE 'UTC')::date - 7 GROUP BY day ORDER BY day",
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM learning_events"
        " WHERE occurred_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        "                      - interval '7 days'"
        " GROUP BY 1 ORDER BY 1",
    ),
}


def timed(conn: psycopg.Connection[Any], query: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.execute(query).fetchall()
        out.append((time.perf_counter() - t) * 1000)
    return out


def writer_p95(dsn: str, seconds: float) -> float:
    samples = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            conn.execute("INSERT INTO learning_events (occurred_at, event_type) VALUES (now(), 'bench')")
            samples.append((time.perf_counter() - t) * 1000)
    return p95(samples)


def views_bench(dsn: str) -> None:
    with db.connect(dsn, autocommit=True) as conn:
        views.refresh_all(conn, settings.ViewsPolicy())
        for name, (mv_query, base_query) in DASHBOARD.items():
            mv = p95(timed(conn, mv_query, 50))
            base = p95(timed(conn, base_query, 5))
            print(f"  read p95 {name}: view {mv:.2f} ms, base table {base:.1f} ms ({base / mv:.0f}x)")
        for v in views.plan(conn, settings.ViewsPolicy()):
            d, _ = views.refresh_view(
                conn, v, schema="public", lock_timeout_ms=5000, statement_timeout_ms=600_000
            )
            print(f"  refresh {v.name}: {d:.0f} ms ({'CONCURRENTLY' if v.concurrent else 'plain'})")
    idle = writer_p95(dsn, 10)
    for concurrent in (True, False):
        stop = threading.Event()

        def loop(concurrent: bool = concurrent, stop: threading.Event = stop) -> None:
            with db.connect(dsn, autocommit=True) as c:
                planned = views.plan(c, settings.ViewsPolicy())
                if not concurrent:
                    planned = [dataclasses.replace(v, unique_index=None) for v in planned]
                while not stop.is_set():
                    for v in planned:
                        views.refresh_view(
                            c, v, schema="public", lock_timeout_ms=5000, statement_timeout_ms=600_000
                        )

        th = threading.Thread(target=loop)
        th.start()
        time.sleep(0.5)
        busy = writer_p95(dsn, 10)
        stop.set()
        th.join()
        mode = "CONCURRENTLY" if concurrent else "plain"
        print(
            f"  writer p95: idle {idle:.2f} ms, beside a {mode} refresh loop {busy:.2f} ms"
            f" ({busy / idle:.2f}x idle)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("PGTENDER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--views", action="store_true", help="also the views read/write benchmark")
    parser.add_argument("--keep", metavar="NAME", help="keep (or reuse) the loaded database NAME")
    args = parser.parse_args()
    configure_logging(json=False, level="ERROR")

    suffix = uuid.uuid4().hex[:8]
    base_name = f"pgtender_bench_empty_{suffix}"
    base_dsn = create_db(args.dsn, base_name)
    try:
        with db.connect(base_dsn, autocommit=True) as conn:
            migrations.migrate(conn)
        b_cold, b_runs, _ = health_runs(base_dsn, args.runs)
    finally:
        drop_db(args.dsn, base_name)

    name = args.keep or f"pgtender_bench_health_{suffix}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    loaded_dsn = conninfo.make_conninfo(args.dsn, dbname=name)
    try:
        if not exists:
            create_db(args.dsn, name)
            print(
                f"loading {args.days} days x {args.rows_per_day:,} events into {name}"
                f" ({datetime.now():%H:%M:%S})"
            )
            with db.connect(
                loaded_dsn, autocommit=True, policy=settings.DatabasePolicy(statement_timeout_ms=86_400_000)
            ) as conn:
                migrations.migrate(conn)
                load(conn, args.days, args.rows_per_day)
        cold, runs, per_probe = health_runs(loaded_dsn, args.runs)
        events = psycopg.connect(loaded_dsn).execute("SELECT count(*) FROM learning_events").fetchone()
        print(f"\nhealth run database time ({args.runs} runs, {events[0] if events else 0:,} events):")
        print(
            f"  empty database : cold {b_cold:.1f} ms, median {statistics.median(b_runs):.1f} ms,"
            f" p95 {p95(b_runs):.1f} ms"
        )
        print(
            f"  loaded database: cold {cold:.1f} ms, median {statistics.median(runs):.1f} ms,"
            f" p95 {p95(runs):.1f} ms"
        )
        print(
            f"  ratio loaded/empty (median): {statistics.median(runs) / statistics.median(b_runs):.2f}x;"
            " budget 1000 ms"
        )
        for probe, ms in sorted(per_probe.items(), key=lambda kv: -kv[1]):
            print(f"    {probe:<22} {ms:7.2f} ms")
        if args.views:
            print("\nviews:")
            views_bench(loaded_dsn)
    finally:
        if not args.keep:
            drop_db(args.dsn, name)


if __name__ == "__main__":
    main()
