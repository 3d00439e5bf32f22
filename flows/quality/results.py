"""Writing quality results into data_quality_checks: one current row per (check, target, window).

Re-running a suite for a window supersedes its previous rows (``is_current = false``, kept as
history) and inserts the new ones, in one transaction with the counts checked before and after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from flows.core.db import load_sql

Conn = psycopg.Connection[tuple[Any, ...]]


class ResultCountMismatch(RuntimeError):
    """The write did not leave exactly the expected current rows; the transaction rolled back."""


@dataclass(kw_only=True)
class CheckRow:
    check_name: str
    suite: str
    target: str
    status: str
    observed_value: Any = None
    expected: Any = None
    threshold: float | None = None
    score: float | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)


def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy: timestamps as ISO text, decimals/NaN as numbers or text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(json_safe(value))


def replace_results(
    conn: Conn,
    *,
    suite: str,
    window_start: datetime,
    window_end: datetime,
    rows: list[CheckRow],
    flow_run_id: str | None,
) -> dict[str, int]:
    """Supersede the suite's current rows for the window and insert ``rows``; returns counts."""
    key = {"suite": suite, "window_start": window_start, "window_end": window_end}
    names = [r.check_name for r in rows]
    if len(names) != len(set(names)):
        raise ValueError(f"suite {suite}: duplicate check names in one result set")
    params = [
        {
            **key,
            "check_name": r.check_name,
            "target": r.target,
            "status": r.status,
            "observed_value": _jsonb(r.observed_value),
            "expected": _jsonb(r.expected),
            "threshold": r.threshold,
            "score": r.score,
            "unexpected_count": r.unexpected_count,
            "unexpected_percent": r.unexpected_percent,
            "sample": _jsonb(r.sample),
            "details": Jsonb(json_safe(r.details)),
            "flow_run_id": flow_run_id,
        }
        for r in rows
    ]
    with conn.transaction(), conn.cursor() as cur:
        before_row = cur.execute(load_sql("queries/quality/count_current.sql"), key).fetchone()
        before = int(before_row[0]) if before_row else 0
        cur.execute(load_sql("queries/quality/supersede.sql"), key)
        superseded = cur.rowcount
        if superseded != before:
            raise ResultCountMismatch(f"{suite}: superseded {superseded} row(s), expected {before}")
        if params:
            cur.executemany(load_sql("queries/quality/insert_check.sql"), params)
        after_row = cur.execute(load_sql("queries/quality/count_current.sql"), key).fetchone()
        after = int(after_row[0]) if after_row else 0
        if after != len(rows):
            raise ResultCountMismatch(
                f"{suite}: {after} current row(s) after the write, expected {len(rows)}"
            )
    return {"superseded": superseded, "inserted": len(rows)}
