"""Benchmark: database time of one full health run, and the views' read/write side effects.

    .venv/bin/python bench/health.py [--dsn URL] [--days 30] [--rows-per-day 1000000] [--runs 20]
                                     [--views [--rounds 5] [--window 5]] [--keep NAME]

Creates a database on the server (default: $PGTENDER_TEST_DATABASE_URL, else the local server),
migrates it, loads ``days`` x ``rows-per-day`` learning events ending now (plus some model
evaluations, query logs, resource samples and ledger rows, so that every probe computes rather than
skips), then times every probe of the health run. "Database time" is the wall time of each probe's
statements seen by the client over a local connection (an upper bound: it includes round trips).
The baseline is the same health run on a freshly migrated, empty database measured in the same
invocation, so the ratio shows what the data volume costs.

With ``--views``: p95 read latency of each dashboard query on its view vs the same aggregate on
the base tables, each refresh's time, and writer p95 (single-row inserts into learning_events)
vs idle, in alternating idle/busy windows, beside three loops run back to back: the views job
(the daily rollup's trailing days + the materialized views CONCURRENTLY), the same with plain
REFRESH, and the baseline: mv_daily_learning_events as migration 0007 defined it, a materialized
view over the whole history (bench/sql/full_history_daily.sql).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo, sql

from flows import health, views
from flows.core import clock, db, migrations
from flows.core.logs import configure_logging
from flows.core.policy import settings
from flows.registry import REGISTRY

# job -> cron of every scheduled job: what the watchdog probe reads (the default policy's schedules)
SCHEDULES = {job: s.cron for job, s in REGISTRY.schedules(settings.Policy()).items()}


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
    load_side_tables(conn, days)
    conn.execute(db.load_sql("queries/views/rollup_history.sql"))  # a bulk load: roll up every day
    conn.execute("VACUUM ANALYZE")
    print(f"  loaded and analyzed in {time.perf_counter() - started:.0f} s", flush=True)


SIDE_TABLES: list[tuple[str, list[str]]] = [
    (
        "ml_models",
        [
            "INSERT INTO ml_models (name, version, model_type)"
            " SELECT 'm' || g, 'v1', 'classifier' FROM generate_series(1, 20) g"
        ],
    ),
    (
        "model_evaluations",
        [
            """
            INSERT INTO model_evaluations (model_id, metric_name, metric_value, is_baseline, evaluated_at)
            SELECT m.id, (ARRAY['accuracy','f1','auc'])[1 + k %% 3], 0.8 + random() * 0.1, g = 1,
                   now() - make_interval(days => %(days)s) + g * interval '10 minutes'
              FROM ml_models m, generate_series(1, %(days)s * 144) g, generate_series(0, 2) k
            """
        ],
    ),
    (
        "pattern_occurrences",
        [
            "INSERT INTO identified_patterns (pattern_type, pattern_name, confidence_score)"
            " SELECT (ARRAY['smell','bug','perf','style'])[1 + g %% 4], 'p' || g, 0.9"
            "   FROM generate_series(1, 40) g",
            """
            INSERT INTO pattern_occurrences (pattern_id, source_type, source_id, confidence, detected_at)
            SELECT a.ids[1 + g %% cardinality(a.ids)], 'code_file', 'file' || (g %% 997), random(),
                   now() - (1 - g::float8 / %(side)s) * make_interval(days => %(days)s)
              FROM (SELECT array_agg(id) AS ids FROM identified_patterns) a, generate_series(1, %(side)s) g
            """,
        ],
    ),
    (
        "llm_interactions",
        [
            """
            INSERT INTO llm_interactions (model_name, interaction_type, prompt_tokens, completion_tokens,
                                          cost_usd, latency_ms, status, created_at)
            SELECT (ARRAY['gpt-4o-mini','gpt-4o','claude-3-5-sonnet'])[1 + g %% 3], 'chat', 400 + g %% 1600,
                   g %% 900, 0.001 * (g %% 7), 300 + g %% 4000,
                   CASE WHEN g %% 50 = 0 THEN 'error' ELSE 'success' END,
                   now() - (1 - g::float8 / %(side)s) * make_interval(days => %(days)s)
              FROM generate_series(1, %(side)s) g
            """
        ],
    ),
    (
        "query_performance_logs",
        [
            "INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms, baseline_ms)"
            " SELECT now() - make_interval(mins => g %% 10000), 'q' || (g %% 50), 5 + random() * 10,"
            "        CASE WHEN g %% 2 = 0 THEN 10 END"
            "   FROM generate_series(1, 100000) g"
        ],
    ),
    (
        "resource_utilization",
        [
            "INSERT INTO resource_utilization"
            "       (measured_at, resource_type, resource_name, host, utilization_pct)"
            " SELECT now() - make_interval(mins => g), (ARRAY['cpu','memory','disk'])[1 + g %% 3],"
            "        'r' || (g %% 3), 'db1', random() * 80"
            "   FROM generate_series(1, 20000) g"
        ],
    ),
    (
        "pgtender_operations",
        [
            "INSERT INTO pgtender_operations (job, status, started_at, finished_at)"
            " SELECT j, 'completed', now() - make_interval(mins => g * 5),"
            "        now() - make_interval(mins => g * 5)"
            "   FROM unnest(ARRAY['views','health','capacity','partitions','retention','quality']) j,"
            "        generate_series(1, 2000) g"
        ],
    ),
]


def load_side_tables(conn: psycopg.Connection[Any], days: int, rows: int = 400_000) -> bool:
    """Fill the other tables the probes and views read, each only if empty (a ``--keep`` database
    from an older run gets what it lacks). ``rows`` pattern occurrences and LLM calls over the days."""
    loaded = False
    for table, statements in SIDE_TABLES:
        if conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        ).fetchone() == (True,):
            continue
        for statement in statements:
            conn.execute(statement, {"days": days, "side": rows})
        loaded = True
    return loaded


def health_runs(dsn: str, runs: int) -> tuple[float, list[float], dict[str, float]]:
    policy = settings.HealthPolicy()
    totals: list[float] = []
    per_probe: dict[str, list[float]] = {}
    with db.connect(dsn, autocommit=True) as conn:
        cold = health.run_probes(conn, policy, now=clock.db_now(conn), schedules=SCHEDULES).db_ms
        for _ in range(runs):
            run = health.run_probes(conn, policy, now=clock.db_now(conn), schedules=SCHEDULES)
            totals.append(run.db_ms)
            for name, ms in run.probe_ms.items():
                per_probe.setdefault(name, []).append(ms)
    return cold, totals, {k: statistics.median(v) for k, v in per_probe.items()}


# A week of each view as a dashboard would read it, and the same aggregate on its base tables:
# %(day)s is the first UTC day of the week, %(since)s its start.
DASHBOARD = {
    "mv_daily_learning_events": (
        "SELECT day, sum(event_count) FROM mv_daily_learning_events"
        " WHERE day >= %(day)s GROUP BY day ORDER BY day",
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM learning_events"
        " WHERE occurred_at >= %(since)s GROUP BY 1 ORDER BY 1",
    ),
    "mv_model_performance_trend": (
        "SELECT model_name, day, avg_value FROM mv_model_performance_trend"
        " WHERE metric_name = 'accuracy' AND day >= %(day)s ORDER BY model_name, day",
        "SELECT m.name, (e.evaluated_at AT TIME ZONE 'UTC')::date AS day, avg(e.metric_value)"
        "  FROM model_evaluations e JOIN ml_models m ON m.id = e.model_id"
        " WHERE e.metric_name = 'accuracy' AND e.evaluated_at >= %(since)s GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    "mv_pattern_trend": (
        "SELECT pattern_type, sum(occurrence_count) FROM mv_pattern_trend"
        " WHERE day >= %(day)s GROUP BY 1 ORDER BY 2 DESC",
        "SELECT p.pattern_type, count(*) FROM pattern_occurrences o"
        "  JOIN identified_patterns p ON p.id = o.pattern_id"
        " WHERE o.detected_at >= %(since)s GROUP BY 1 ORDER BY 2 DESC",
    ),
    "mv_llm_usage_daily": (
        "SELECT day, sum(interactions), sum(cost_usd) FROM mv_llm_usage_daily"
        " WHERE day >= %(day)s GROUP BY day ORDER BY day",
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*), sum(cost_usd) FROM llm_interactions"
        " WHERE created_at >= %(since)s GROUP BY 1 ORDER BY 1",
    ),
}


def timed(conn: psycopg.Connection[Any], query: str, n: int, params: dict[str, Any]) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.execute(query, params).fetchall()
        out.append((time.perf_counter() - t) * 1000)
    return out


def writer_samples(dsn: str, seconds: float) -> list[float]:
    samples = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            conn.execute("INSERT INTO learning_events (occurred_at, event_type) VALUES (now(), 'bench')")
            samples.append((time.perf_counter() - t) * 1000)
    return samples


FULL_HISTORY = "bench_full_history_daily"
LOOPS = {
    "job": "the views job (rollup of the trailing days + CONCURRENTLY)",
    "job-plain": "the views job with plain REFRESH",
    "full-history": "0007's full-history materialized view, CONCURRENTLY (the baseline)",
}


class RefreshLoop(threading.Thread):
    """The views job's core (refresh + metrics, dependency order), or the baseline, back to back."""

    def __init__(self, dsn: str, variant: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.variant = dsn, variant
        self.stop = threading.Event()
        self.refreshes = 0

    def run(self) -> None:
        policy = settings.ViewsPolicy(statement_timeout_ms=3_600_000)
        with db.connect(self.dsn, autocommit=True) as conn:
            planned = views.plan(conn, policy)
            if self.variant == "full-history":
                planned = [v for v in planned if v.name == FULL_HISTORY]
            else:
                planned = [v for v in planned if v.name != FULL_HISTORY]
            if self.variant == "job-plain":
                planned = [dataclasses.replace(v, unique_index=None) for v in planned]
            while not self.stop.is_set():
                for v in planned:
                    views.refresh_and_record(conn, v, policy=policy)
                    self.refreshes += 1


def writer_impact(dsn: str, rounds: int, seconds: float) -> None:
    """Writer p95 beside a refresh loop vs idle, in alternating windows.

    Each loop starts after a CHECKPOINT. Idle and busy windows alternate (idle-busy, then
    busy-idle, ...) so that drift on the machine (autovacuum, writeback after a refresh) lands on
    both sides; the p95 of each side
    is over all of its windows' samples, and the per-round ratios show the spread.
    """
    for variant, label in LOOPS.items():
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # start clean: no writeback left over from the previous loop
        idle: list[float] = []
        busy: list[float] = []
        ratios: list[float] = []
        refreshes = 0
        for r in range(rounds):
            order = ("idle", "busy") if r % 2 == 0 else ("busy", "idle")
            window: dict[str, list[float]] = {}
            for side in order:
                if side == "idle":
                    window[side] = writer_samples(dsn, seconds)
                    continue
                loop = RefreshLoop(dsn, variant)
                loop.start()
                time.sleep(0.5)  # the loop is inside its first refresh
                window[side] = writer_samples(dsn, seconds)
                loop.stop.set()
                loop.join()
                refreshes += loop.refreshes
            idle += window["idle"]
            busy += window["busy"]
            ratios.append(p95(window["busy"]) / p95(window["idle"]))
        print(
            f"  writer p95 beside {label}: idle {p95(idle):.3f} ms, busy {p95(busy):.3f} ms"
            f" -> {p95(busy) / p95(idle):.2f}x idle (rounds {min(ratios):.2f}-{max(ratios):.2f}x;"
            f" {rounds} x {seconds:.0f} s each side, {len(busy):,} busy inserts, {refreshes} refreshes)"
        )


def views_bench(dsn: str, rounds: int, seconds: float) -> None:
    policy = settings.ViewsPolicy(statement_timeout_ms=3_600_000)
    with db.connect(
        dsn, autocommit=True, policy=settings.DatabasePolicy(statement_timeout_ms=3_600_000)
    ) as conn:
        conn.execute((Path(__file__).parent / "sql" / "full_history_daily.sql").read_bytes())
        views.refresh_all(conn, policy)
        today = datetime.now(UTC).date()
        week = {
            "day": today - timedelta(days=7),
            "since": datetime.combine(today, dt_time(), UTC) - timedelta(days=7),
        }
        for name, (mv_query, base_query) in DASHBOARD.items():
            mv = p95(timed(conn, mv_query, 50, week))
            base = p95(timed(conn, base_query, 5, week))
            print(f"  read p95 {name}: view {mv:.2f} ms, base table {base:.1f} ms ({base / mv:.0f}x)")
        for v in views.plan(conn, policy):
            d, rows = views.refresh_view(
                conn,
                v,
                schema="public",
                lock_timeout_ms=5000,
                statement_timeout_ms=3_600_000,
                days=views.rollup_days(today, policy) if v.rollup_function else None,
            )
            print(f"  refresh {v.name}: {d:.0f} ms ({v.mode}, {rows:,} rows)")
    writer_impact(dsn, rounds, seconds)


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
    parser.add_argument("--rounds", type=int, default=5, help="idle/busy window pairs (--views)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds a window (--views)")
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
        else:
            with db.connect(loaded_dsn, autocommit=True) as conn:
                migrations.migrate(conn)  # a kept database from an older version
                if load_side_tables(conn, args.days):
                    conn.execute("VACUUM ANALYZE")
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
            views_bench(loaded_dsn, args.rounds, args.window)
    finally:
        if not args.keep:
            drop_db(args.dsn, name)


if __name__ == "__main__":
    main()
