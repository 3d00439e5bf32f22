"""Planted data for the quality tests: clean days plus defects with exact counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

CLEAN_ROWS = 1000
HISTORY_DAYS = 7

# Defects planted on the "bad" day of learning_events (every other row is clean).
LE_DEFECTS = {
    "session_id_null": 3,
    "unknown_event_type": 4,
    "duplicated_ids": 2,  # two ids appear twice each -> GX counts 4 unexpected rows
    "orphan_model": 5,
    "ingested_in_future": 6,
}
LE_BAD_TOTAL = CLEAN_ROWS + sum(LE_DEFECTS.values())


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def model_id(conn: psycopg.Connection[Any]) -> Any:
    row = conn.execute("SELECT id FROM ml_models WHERE name = 'quality_test_model'").fetchone()
    if row:
        return row[0]
    row = conn.execute(
        "INSERT INTO ml_models (name, version, model_type, framework, status, artifact_uri, deployed_at)"
        " VALUES ('quality_test_model', 'v1', 'classifier', 'sklearn', 'deployed', 's3://m/1', now())"
        " RETURNING id"
    ).fetchone()
    assert row is not None
    return row[0]


def clean_events(conn: psycopg.Connection[Any], day: date, rows: int = CLEAN_ROWS) -> None:
    """``rows`` clean events spread over the UTC day, the last one at 23:59."""
    mid = model_id(conn)
    conn.execute(
        "INSERT INTO learning_events (occurred_at, ingested_at, event_type, source, session_id, user_id, model_id)"
        " SELECT t, t + interval '2 seconds', (ARRAY['model_prediction','training_step','user_feedback'])[1 + n %% 3],"
        "        'api', gen_random_uuid(), 'user_' || n, CASE WHEN n %% 2 = 0 THEN %(mid)s::uuid END"
        "   FROM generate_series(1, %(rows)s) AS n,"
        "        LATERAL (SELECT %(start)s::timestamptz + (interval '1439 minutes') * n / %(rows)s AS t) x",
        {"rows": rows, "start": day_start(day), "mid": mid},
    )


def history(
    conn: psycopg.Connection[Any], day: date, days: int = HISTORY_DAYS, rows: int = CLEAN_ROWS
) -> None:
    for back in range(1, days + 1):
        clean_events(conn, day - timedelta(days=back), rows)


def defective_events(conn: psycopg.Connection[Any], day: date) -> None:
    """The defects of LE_DEFECTS, on top of the clean rows of ``day``."""
    start = day_start(day)
    noon = start + timedelta(hours=12)
    conn.execute(
        "INSERT INTO learning_events (occurred_at, ingested_at, event_type, source, session_id, user_id)"
        " SELECT %(t)s, %(t)s, 'user_feedback', 'api', NULL, 'u' FROM generate_series(1, 3)",
        {"t": noon},
    )
    conn.execute(
        "INSERT INTO learning_events (occurred_at, ingested_at, event_type, source, session_id, user_id)"
        " SELECT %(t)s, %(t)s, 'bogus_evt', 'api', gen_random_uuid(), 'u' FROM generate_series(1, 4)",
        {"t": noon},
    )
    conn.execute(
        "INSERT INTO learning_events (id, occurred_at, ingested_at, event_type, source, session_id, user_id)"
        " SELECT id, occurred_at + interval '1 second', ingested_at, event_type, source, session_id, user_id"
        "   FROM learning_events WHERE occurred_at >= %(s)s AND occurred_at < %(e)s"
        "  ORDER BY occurred_at LIMIT 2",
        {"s": start, "e": start + timedelta(days=1)},
    )
    conn.execute(
        "INSERT INTO learning_events (occurred_at, ingested_at, event_type, source, session_id, user_id, model_id)"
        " SELECT %(t)s, %(t)s, 'user_feedback', 'api', gen_random_uuid(), 'u', gen_random_uuid()"
        "   FROM generate_series(1, 5)",
        {"t": noon},
    )
    conn.execute(
        "INSERT INTO learning_events (occurred_at, ingested_at, event_type, source, session_id, user_id)"
        " SELECT %(t)s, now() + interval '1 day', 'user_feedback', 'api', gen_random_uuid(), 'u'"
        "   FROM generate_series(1, 6)",
        {"t": noon},
    )


def predictions(conn: psycopg.Connection[Any], day: date) -> None:
    """100 clean predictions + 2 NULL confidences + 3 unknown target types + 1 resolved w/o actual."""
    mid = model_id(conn)
    start = day_start(day)
    conn.execute(
        "INSERT INTO predictions (model_id, prediction_type, target_entity_type, target_entity_id,"
        "                         predicted_value, confidence, predicted_at)"
        " SELECT %(mid)s, 'bug_likelihood', CASE WHEN n <= 3 THEN 'spaceship' ELSE 'code_file' END,"
        "        'f' || n, '{}'::jsonb, CASE WHEN n > 103 THEN NULL ELSE 0.7 END,"
        "        %(s)s::timestamptz + interval '10 minutes' * n"
        "   FROM generate_series(1, 105) AS n",
        {"mid": mid, "s": start},
    )
    conn.execute(
        "INSERT INTO predictions (model_id, prediction_type, target_entity_type, target_entity_id,"
        "                         predicted_value, confidence, predicted_at, resolved_at)"
        " VALUES (%(mid)s, 'bug_likelihood', 'code_file', 'fx', '{}'::jsonb, 0.9, %(t)s, %(t)s)",
        {"mid": mid, "t": start + timedelta(hours=20)},
    )


def pattern_occurrences(conn: psycopg.Connection[Any], day: date) -> None:
    """49 occurrences, of which two (pattern, source, detected_at) keys appear twice (4 rows)."""
    start = day_start(day)
    row = conn.execute(
        "INSERT INTO identified_patterns (pattern_type, pattern_name, confidence_score)"
        " VALUES ('code_smell', 'long_method', 0.8) RETURNING id"
    ).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO pattern_occurrences (pattern_id, source_type, source_id, confidence, detected_at)"
        " SELECT %(p)s, 'code_file', 'f' || least(n, 47), 0.9,"
        "        %(s)s::timestamptz + interval '1 minute' * least(n, 47)"
        "   FROM generate_series(1, 49) AS n WHERE n <> 48",
        {"p": row[0], "s": start},
    )
    conn.execute(
        "INSERT INTO pattern_occurrences (pattern_id, source_type, source_id, confidence, detected_at)"
        " VALUES (%(p)s, 'code_file', 'f1', 0.9, %(s)s::timestamptz + interval '1 minute')",
        {"p": row[0], "s": start},
    )
