"""bench/quality: pgtender's daily learning_events suite vs the one-scan floor and GX's default.

    .venv/bin/python bench/quality.py [--rows 1000000] [--repeat 5] [--keep]

Creates its own scratch database on PGTENDER_BENCH_SERVER (default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it, loads ROWS learning events into one
UTC day (yesterday) with realistic defect rates, then times in this one process:

  floor      one hand-written SQL statement computing the same facts as the suite
  floor-4    the issue's reference: one statement, four facts (rows, nulls, set, range)
  pgtender   the flow core for the suite: fused scan + samples for the failures + recording
  gx-default GX 1.24 on a query asset of the same day, default result format (SUMMARY)
  gx-bool    the same with BOOLEAN_ONLY

Times are medians of --repeat warm runs (GX's import and context set-up reported separately).
Peak memory: Python allocations per phase (tracemalloc, in a separate pass) and the process's
max RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import conninfo, sql

from checks import Suite, all_suites
from checks.learning_events import EVENT_TYPES
from flows.core import db, migrations
from flows.core.policy import settings
from flows.core.telemetry import disable_telemetry
from flows.quality import compiler, evaluate, options, recording

SOURCES = ["api", "worker", "scheduler", "ui", "git", "user_session"]

LOAD = """
INSERT INTO learning_events (id, occurred_at, ingested_at, event_type, source, session_id, user_id, model_id)
SELECT CASE WHEN n %% 20000 = 0 THEN md5('dup' || (n - 1))::uuid ELSE md5('ev' || n)::uuid END,
       t,
       CASE WHEN n %% 100000 = 7 THEN now() + interval '1 day' ELSE t + interval '3 seconds' END,
       CASE WHEN n %% 500 = 3 THEN 'bogus_evt'
            ELSE (ARRAY['model_prediction','pattern_detected','code_evaluated','training_step',
                        'user_feedback','recommendation_shown'])[1 + n %% 6] END,
       (ARRAY['api','worker','scheduler','ui'])[1 + n %% 4],
       CASE WHEN n %% 200 = 11 THEN NULL ELSE md5('s' || (n / 30))::uuid END,
       'user_' || (n %% 5000),
       CASE WHEN n %% 1000 = 5 THEN md5('orphan' || n)::uuid
            WHEN n %% 3 = 0 THEN %(mid)s::uuid END
  FROM generate_series(1, %(rows)s) AS n,
       LATERAL (SELECT %(start)s::timestamptz + interval '86399 seconds' * n / %(rows)s AS t) x
"""
# The duplicated ids: every 20000th row reuses id md5('dup' || (n-1)), and so does... nothing else,
# so plant the partner rows explicitly (same id, a second later).
LOAD_DUP_PARTNERS = """
INSERT INTO learning_events (id, occurred_at, ingested_at, event_type, source, session_id, user_id)
SELECT md5('dup' || (n - 1))::uuid,
       %(start)s::timestamptz + interval '1 hour' + interval '1 second' * (n / 20000),
       %(start)s::timestamptz + interval '1 hour', 'user_feedback', 'api', md5('s')::uuid, 'u'
  FROM generate_series(20000, %(rows)s, 20000) AS n
"""


def floor_query(suite_now: datetime, start: datetime, end: datetime) -> tuple[str, dict[str, Any]]:
    """Hand-written: the same facts as the learning_events suite, one statement."""
    q = """
    SELECT count(*),
           count(*) FILTER (WHERE event_type IS NOT NULL AND NOT (event_type = ANY(%(types)s))),
           count(event_type),
           count(*) FILTER (WHERE session_id IS NULL),
           count(*) FILTER (WHERE user_id IS NULL),
           count(*) FILTER (WHERE source IS NOT NULL AND NOT (source = ANY(%(sources)s))),
           count(source),
           count(*) FILTER (WHERE occurred_at > %(now)s),
           count(occurred_at),
           count(*) FILTER (WHERE ingested_at > %(now)s),
           count(ingested_at),
           count(id),
           count(*) FILTER (WHERE model_id IS NOT NULL AND model_id NOT IN (SELECT id FROM ml_models)),
           max(occurred_at),
           (SELECT coalesce(sum(d.n), 0) FROM (SELECT count(*) AS n FROM learning_events
                WHERE occurred_at >= %(s)s AND occurred_at < %(e)s AND id IS NOT NULL
                GROUP BY id HAVING count(*) > 1) d)
      FROM learning_events
     WHERE occurred_at >= %(s)s AND occurred_at < %(e)s
    """
    return q, {"types": EVENT_TYPES, "sources": SOURCES, "now": suite_now, "s": start, "e": end}


FLOOR4 = """
SELECT count(*),
       count(*) FILTER (WHERE session_id IS NULL),
       count(*) FILTER (WHERE event_type IS NOT NULL AND NOT (event_type = ANY(%(types)s))),
       count(*) FILTER (WHERE ingested_at > %(now)s)
  FROM learning_events WHERE occurred_at >= %(s)s AND occurred_at < %(e)s
"""


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm-up (caches, plans, lazy imports)
    times = []
    out: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> tuple[dict[str, float], dict[str, Any]]:
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, Any] = {}
    for _ in range(repeat):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            outs[key] = fn()
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, outs


def peak_python_mb(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="DBNAME", help="time an already loaded (--keep) scratch database")
    parser.add_argument(
        "--serial",
        action="store_true",
        help="no parallel workers for any phase (steadier numbers on a busy machine)",
    )
    args = parser.parse_args()
    disable_telemetry()

    server = os.environ.get("PGTENDER_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = args.reuse or f"pgtender_bench_quality_{uuid.uuid4().hex[:8]}"
    dsn = conninfo.make_conninfo(server, dbname=name)
    if not args.reuse:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    state_dir = Path(os.environ.get("PGTENDER_STATE_DIR") or f"/tmp/{name}-state")
    try:
        if args.serial:
            dsn = conninfo.make_conninfo(dsn, options="-c max_parallel_workers_per_gather=0")
        return run(dsn, state_dir, args.rows, args.repeat, load=not args.reuse)
    finally:
        db.close_pools()
        if not args.keep and not args.reuse:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run(dsn: str, state_dir: Path, rows: int, repeat: int, *, load: bool = True) -> int:
    day = datetime.now(UTC).date() - timedelta(days=1)
    now = datetime.now(UTC)
    window = options.day_window(day, now)
    suite = all_suites()["learning_events"]
    policy = settings.QualityPolicy()

    with db.connect(dsn, autocommit=True) as conn:
        if load:
            load_day(conn, window, rows)
        n = conn.execute(
            "SELECT count(*) FROM learning_events WHERE occurred_at >= %s AND occurred_at < %s",
            (window.start, window.end),
        ).fetchone()
        print(f"{n[0] if n else 0} events on {day}")
        return run_phases(conn, dsn, state_dir, suite, window, policy, repeat)


def load_day(conn: Any, window: compiler.Window, rows: int) -> None:
    migrations.migrate(conn)
    mid = conn.execute(
        "INSERT INTO ml_models (name, version, model_type) VALUES ('m', 'v1', 'clf') RETURNING id"
    ).fetchone()
    assert mid is not None
    t0 = time.perf_counter()
    conn.execute(LOAD, {"rows": rows, "start": window.start, "mid": mid[0]})
    conn.execute(LOAD_DUP_PARTNERS, {"rows": rows, "start": window.start})
    conn.execute("VACUUM ANALYZE learning_events")
    print(f"loaded the day in {time.perf_counter() - t0:.1f} s")


def run_phases(
    conn: Any,
    dsn: str,
    state_dir: Path,
    suite: Suite,
    window: compiler.Window,
    policy: settings.QualityPolicy,
    repeat: int,
) -> int:
    now = window.now
    fq, fp = floor_query(now, window.start, window.end)
    f4p = {"types": EVENT_TYPES, "now": now, "s": window.start, "e": window.end}

    def core() -> evaluate.SuiteRun:
        run = evaluate.evaluate_suite(conn, suite, window, policy)
        recording.record(conn, run, flow_run_id=None)
        return run

    run = core()
    failed = [o for o in run.outcomes if o.status == "failed"]
    # The parts of the core: the fused scan alone, and the samples of the failures alone.
    from flows.quality.compiler import build_scan
    from flows.quality.scan import fetch_samples, run_scan

    scan = build_scan(suite, [o.exp for o in run.outcomes], window, sample_size=policy.sample_size)
    failed_facts = [f for f in scan.facts if f.exp.key in {o.key for o in failed} and f.bad is not None]
    by_index = run.outcomes
    counts = {
        f.index: int(by_index[f.index].unexpected_count or by_index[f.index].observed_value or 0)
        for f in failed_facts
    }
    # Interleaved (floor, core, parts, ...) x repeat, so that load from other processes on the
    # machine hits every phase alike; medians.
    medians, outs = interleaved(
        {
            # prepare=False: a once-a-day statement is never prepared (and a generic plan
            # would be several times slower, see flows/quality_sql.run_scan).
            "floor": lambda: conn.execute(fq, fp, prepare=False).fetchone(),
            "floor4": lambda: conn.execute(FLOOR4, f4p, prepare=False).fetchone(),
            "core": core,
            "scan": lambda: run_scan(conn, scan),
            "samples": lambda: fetch_samples(
                conn, suite, scan, failed_facts, window=window, limit=policy.sample_size, counts=counts
            ),
        },
        repeat,
    )
    t_floor, t_floor4, t_core, t_scan, t_samples = (
        medians[k] for k in ("floor", "floor4", "core", "scan", "samples")
    )
    floor_row = outs["floor"]

    t0 = time.perf_counter()
    from flows.quality import gx as gx_runtime

    gx_runtime.context(state_dir)
    t_gx_import = time.perf_counter() - t0
    configs = [gx_runtime.expectation_configuration(o.exp, o.kwargs) for o in run.outcomes]

    def gx(result_format: str) -> Any:
        return gx_runtime.validate_with_gx(
            state_dir, dsn, suite, window, configs, result_format=result_format
        )

    t_gx, gx_res = timed(lambda: gx("SUMMARY"), max(1, repeat // 2))
    t_gx_bool, _ = timed(lambda: gx("BOOLEAN_ONLY"), max(1, repeat // 2))

    mem_core = peak_python_mb(core)
    mem_gx = peak_python_mb(lambda: gx("SUMMARY"))

    agree = all(
        r.success == o.success
        for r, o in zip(
            sorted(gx_res.results, key=lambda r: r.expectation_config.meta["pgtender_key"]),
            sorted(run.outcomes, key=lambda o: o.key),
            strict=True,
        )
    )
    print(
        f"suite learning_events: {len(run.outcomes)} expectations, {len(failed)} failed "
        f"({', '.join(o.key for o in failed)}); samples for failures only; GX agrees: {agree}"
    )
    print(f"floor total rows check: {floor_row[0]}")
    print()
    print(f"{'phase':<34}{'seconds':>9}{'x floor':>9}")
    rows_out = [
        ("floor (hand-written, same facts)", t_floor),
        ("floor-4 (four facts, reference)", t_floor4),
        ("pgtender core (scan+samples+write)", t_core),
        ("  fused scan alone", t_scan),
        ("  samples of the failures alone", t_samples),
        ("GX default (SUMMARY)", t_gx),
        ("GX BOOLEAN_ONLY", t_gx_bool),
    ]
    for label, t in rows_out:
        print(f"{label:<34}{t:>9.3f}{t / t_floor:>9.2f}")
    print()
    print(f"GX import + context (once a process): {t_gx_import:.2f} s")
    print(f"peak Python allocations: pgtender core {mem_core:.1f} MB, GX default {mem_gx:.1f} MB")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    ratio = t_core / t_floor
    print(f"\npgtender / floor = {ratio:.2f} (target <= 1.5); GX default / floor = {t_gx / t_floor:.2f}")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
