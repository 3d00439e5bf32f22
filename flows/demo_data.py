"""Realistic synthetic data for demos, tests and benchmarks (``pgtender demo-data``).

Plain functions, no Prefect, no work at import time. The volumes are generated server-side by the
static statements in ``sql/demo/`` (``INSERT ... SELECT ... FROM generate_series``), made
deterministic with ``setseed()``; values travel only as psycopg parameters.

Besides ordinary related rows for every table of migrations 0002-0006, the data contains rows that
land in DEFAULT partitions and rows that break business expectations while satisfying every
constraint. Exact counts (N = days * rows_per_day), assuming ``now`` is the server's current time,
the schema was migrated this month and ``days <= 89``:

learning_events (N + max(1, N // 1000) + 41 rows):
    * N ordinary events, exactly ``rows_per_day`` per UTC day (day 0 = today up to ``now``),
      known event types, a session id, ``model_id`` NULL or an existing model, lag <= 30 s;
    * max(1, N // 1000) with ``session_id`` NULL;
    * 10 with ``event_type = 'unknown_evt'``;
    * 5 with ``occurred_at`` 1..5 minutes after ``now``;
    * 4 dated 4 months after ``now``'s month and 3 in year 2199: these 7 are in
      ``learning_events_default`` (and are also after ``now``: 12 future rows in all);
    * 7 whose ``model_id`` matches no ``ml_models`` row;
    * 12 with lag (ingested_at - occurred_at) of 20 minutes, occurred in the last 35 minutes.
    Every anomalous row carries ``payload->>'anomaly'`` naming its kind.
model_evaluations: one baseline per model and metric; model ``bug_likelihood_predictor`` has
    latest accuracy = 0.70 x baseline (the only model more than 20 % below its baseline).
query_performance_logs: 6 rows with execution_ms > 2 x baseline_ms (12 x baseline + 4000 ms),
    all in the last 6 hours; ordinary rows stay within 0.6..1.4 x baseline.
resource_utilization: 3 rows above 85 % (the disk's three most recent samples).
identified_patterns: ('code_smell', 'god_class') appears twice (no UNIQUE forbids it).
git_operation_learning_events: one business key (repository, commit_sha, operation) appears twice.
data_quality_checks: check names prefixed ``demo_``, suite ``demo``.

Values are deterministic for a given ``seed`` and ``now`` (learning_events ids included: they are
time-ordered UUIDv7-style ids derived from the seed); other tables' ids come from gen_random_uuid().

migrate_existing_data() has work to do afterwards. Its first run affects, step by step: git mirror
and link 40 * days + 1 each, user-session mirror and link 30 * days each, duration_seconds
27 * days, individuals' experiment_id 0, generation statistics 60, experiments' best_fitness 3,
patterns 13, predictions' is_correct 125 * (days - 1); a second run affects 0 rows everywhere.
The git events it mirrors get a synthetic session id (per repository, author and UTC day), so the
NULL-session count above stays exact. "After now" counts hold at load time (the 5 near-future
rows stop being in the future 5 minutes later).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from flows.core.db import load_sql, sql_dir
from flows.core.errors import ConfigError


def demo_sql_dir() -> Path:
    """``sql/demo``, from pgtender's package data."""
    return sql_dir() / "demo"


# (table, statement file) in load order; every statement is a single INSERT into that table.
STATEMENTS: tuple[tuple[str, str], ...] = (
    ("ml_models", "01_ml_models.sql"),
    ("training_datasets", "02_training_datasets.sql"),
    ("model_training_sessions", "03_model_training_sessions.sql"),
    ("model_evaluations", "04_model_evaluations.sql"),
    ("feature_store", "05_feature_store.sql"),
    ("evolution_experiments", "06_evolution_experiments.sql"),
    ("evolution_generations", "07_evolution_generations.sql"),
    ("evolution_individuals", "08_evolution_individuals.sql"),
    ("code_evaluations", "09_code_evaluations.sql"),
    ("llm_interactions", "10_llm_interactions.sql"),
    ("identified_patterns", "11_identified_patterns.sql"),
    ("pattern_occurrences", "12_pattern_occurrences.sql"),
    ("predictions", "13_predictions.sql"),
    ("recommendations", "14_recommendations.sql"),
    ("ab_testing_experiments", "15_ab_testing_experiments.sql"),
    ("learning_events", "16_learning_events.sql"),
    ("learning_events", "17_learning_events_anomalies.sql"),
    ("system_performance_metrics", "18_system_performance_metrics.sql"),
    ("query_performance_logs", "19_query_performance_logs.sql"),
    ("query_performance_logs", "20_query_performance_logs_slow.sql"),
    ("resource_utilization", "21_resource_utilization.sql"),
    ("git_operation_learning_events", "23_git_operation_learning_events.sql"),
    ("git_operation_learning_events", "24_git_operation_learning_events_duplicate.sql"),
    ("user_session_learning_events", "25_user_session_learning_events.sql"),
    ("data_quality_checks", "26_data_quality_checks.sql"),
    # last: the history is computed from the rows loaded above
    ("capacity_planning_metrics", "27_capacity_history.sql"),
)

# Tables whose presence of rows means demo data (or real data) is already there.
_GUARD_TABLES: tuple[str, ...] = ("ml_models", "learning_events")


def expected_counts(days: int, rows_per_day: int) -> dict[str, int]:
    """Rows ``load_demo_data`` inserts per table for the given parameters."""
    n = days * rows_per_day
    return {
        "ml_models": 6,
        "training_datasets": 4,
        "model_training_sessions": 12,
        "model_evaluations": 24 * (days + 1),
        "feature_store": 400,
        "evolution_experiments": 3,
        "evolution_generations": 60,
        "evolution_individuals": 1500,
        "code_evaluations": 1500,
        "llm_interactions": 1500 + 40 * days,
        "identified_patterns": 13,
        "pattern_occurrences": 300 * days,
        "predictions": 500 * days,
        "recommendations": 40,
        "ab_testing_experiments": 4,
        "learning_events": n + max(1, n // 1000) + 41,
        "system_performance_metrics": 2304 * days,
        "query_performance_logs": 200 * days + 6,
        "resource_utilization": 144 * days,
        "capacity_planning_metrics": 8 * days,  # 4 tables x (total_bytes, row_count) x days
        "git_operation_learning_events": 40 * days + 1,
        "user_session_learning_events": 30 * days,
        "data_quality_checks": 5 * days + 1,
    }


def _statement(name: str) -> bytes:
    # bytes: a psycopg query type; the files are static, only values are parameters.
    return (demo_sql_dir() / name).read_bytes()


def _seed_fraction(seed: int) -> float:
    """Map any integer seed onto setseed()'s domain [-1, 1]."""
    modulus = 2_000_003
    return (seed % modulus) / (modulus - 1) * 2.0 - 1.0


def load_demo_data(
    conn: psycopg.Connection[Any],
    *,
    days: int = 14,
    rows_per_day: int = 2000,
    seed: int = 42,
    now: datetime | None = None,
) -> dict[str, int]:
    """Fill every table of migrations 0002-0006 with related demo rows, in one transaction.

    Returns the rows inserted per table (from the statements' row counts). The daily rollup is then
    computed for every loaded day, materialized views in schema public are refreshed (not
    concurrently) and the database is analyzed.
    Raises ConfigError (one line, exit 2, nothing loaded) for non-positive sizes or when
    ml_models/learning_events already hold rows.
    """
    if days < 1 or rows_per_day < 1:
        raise ConfigError("days and rows_per_day must be >= 1")

    counts: dict[str, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        for table in _GUARD_TABLES:
            cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
            row = cur.fetchone()
            if row is not None and row[0]:
                raise ConfigError(
                    f"{table} already has rows: demo data goes into an empty schema only; nothing loaded"
                )

        if now is None:
            cur.execute("SELECT now()")
            row = cur.fetchone()
            if row is None:  # pragma: no cover - SELECT now() always returns a row
                raise RuntimeError("SELECT now() returned no row")
            now = row[0]

        params: Mapping[str, Any] = {
            "now": now,
            "days": days,
            "rows_per_day": rows_per_day,
            "seed": seed,
            "seed_fraction": _seed_fraction(seed),
        }
        cur.execute(_statement("00_setseed.sql"), params)
        for table, name in STATEMENTS:
            cur.execute(_statement(name), params)
            counts[table] = counts.get(table, 0) + max(cur.rowcount, 0)

        cur.execute(load_sql("queries/views/rollup_history.sql"))
        cur.execute("SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' ORDER BY matviewname")
        views = [str(r[0]) for r in cur.fetchall()]
        for view in views:
            cur.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier("public", view)))
        cur.execute("ANALYZE")
    return counts
