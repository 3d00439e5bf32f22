"""Refreshing one view or rollup and recording its duration, rows and staleness."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from flows.core import metrics
from flows.core.db import load_sql, set_local
from flows.core.engine import ReplayContext, Replayed
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.views.catalog import MatView, plan

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "views"


@dataclass(frozen=True, kw_only=True)
class RefreshResult:
    view: str
    status: str  # refreshed | failed
    mode: str  # concurrently | plain | rollup
    duration_ms: float
    rows: int | None
    staleness_seconds: float | None
    finished_at: datetime
    error: str | None = None
    warning: str | None = None
    days: str | None = None  # a rollup's recomputed UTC days, "first..last"


def last_successes(conn: Conn, names: list[str]) -> dict[str, datetime]:
    rows = conn.execute(load_sql("queries/views/last_success.sql"), {"views": names}).fetchall()
    return {str(r[0]): r[1] for r in rows}


def _now(conn: Conn) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def rollup_days(today: date, policy: settings.ViewsPolicy) -> tuple[date, date]:
    """The trailing UTC days a scheduled run recomputes: today and the ``rollup_days - 1`` before."""
    return today - timedelta(days=policy.rollup_days - 1), today


def refresh_view(
    conn: Conn,
    view: MatView,
    *,
    schema: str,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    days: tuple[date, date] | None = None,
) -> tuple[float, int]:
    """Refresh one view (a rollup: recompute ``days``) in its own transaction.

    Returns (duration ms, rows now in the view or rollup table).
    """
    ident = sql.Identifier(schema, view.name)
    params: tuple[date, date] | None = None
    if view.rollup_function is not None:
        if days is None:
            raise ValueError(f"rollup {view.name} needs the days to recompute")
        statement = sql.SQL("SELECT {}(%s, %s)").format(sql.Identifier(schema, view.rollup_function))
        params = days
    elif view.concurrent:
        statement = sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(ident)
    else:
        statement = sql.SQL("REFRESH MATERIALIZED VIEW {}").format(ident)
    with conn.transaction():
        set_local(conn, "lock_timeout", f"{lock_timeout_ms}ms")
        set_local(conn, "statement_timeout", f"{statement_timeout_ms}ms")
        started = time.perf_counter()
        conn.execute(statement, params)
        duration_ms = (time.perf_counter() - started) * 1000.0
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
    return duration_ms, int(row[0]) if row else 0


def measurements(result: RefreshResult) -> list[metrics.Measurement]:
    meta: dict[str, Any] = {"mode": result.mode, "status": result.status}
    if result.days:
        meta["days"] = result.days
    if result.error:
        meta["error"] = result.error[:500]
    out: list[metrics.Measurement] = []
    if result.status == "refreshed":
        out.append(
            metrics.Measurement("view_refresh_ms", "view", result.view, result.duration_ms, "ms", meta)
        )
        out.append(
            metrics.Measurement("view_rows", "view", result.view, float(result.rows or 0), "rows", meta)
        )
    else:
        out.append(metrics.Measurement("view_refresh_failed", "view", result.view, 1.0, "count", meta))
    if result.staleness_seconds is not None:
        out.append(
            metrics.Measurement(
                "view_staleness_seconds", "view", result.view, result.staleness_seconds, "seconds", meta
            )
        )
    return out


def refresh_and_record(
    conn: Conn,
    view: MatView,
    *,
    policy: settings.ViewsPolicy,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
    days: tuple[date, date] | None = None,
) -> RefreshResult:
    """Refresh one view and record its metrics. A database error becomes a 'failed' result.

    A rollup recomputes ``days`` (default: the trailing ``policy.rollup_days`` UTC days).
    Staleness is the age of the data the refresh replaced: time since the last successful refresh
    recorded by pgtender (unknown before the first one). For a failed view it is its data's age now.
    """
    log = get_logger(job=JOB, view=view.name)
    warning = view.warning()
    if warning:
        log.warning("plain refresh", reason=warning)
    previous = last_successes(conn, [view.name]).get(view.name)
    started_at = _now(conn)
    staleness = None if previous is None else (started_at - previous).total_seconds()
    span: str | None = None  # a rollup's recomputed days
    if view.rollup_function is not None:
        days = days or rollup_days(started_at.astimezone(UTC).date(), policy)
        span = f"{days[0]}..{days[1]}"
    result = _refresh_to_result(
        conn, view, policy=policy, days=days, span=span, staleness=staleness, warning=warning
    )
    metrics.record(
        conn,
        measurements(result),
        measured_at=result.finished_at,
        flow_run_id=flow_run_id,
        operation_id=operation_id,
    )
    return result


def _refresh_to_result(
    conn: Conn,
    view: MatView,
    *,
    policy: settings.ViewsPolicy,
    days: tuple[date, date] | None,
    span: str | None,
    staleness: float | None,
    warning: str | None,
) -> RefreshResult:
    """Refresh one view under the policy's timeouts; a database error is a 'failed' result."""
    log = get_logger(job=JOB, view=view.name)
    mode = view.mode
    try:
        duration_ms, rows = refresh_view(
            conn,
            view,
            schema=policy.schema_name,
            lock_timeout_ms=policy.lock_timeout_ms,
            statement_timeout_ms=policy.statement_timeout_ms,
            days=days,
        )
    except psycopg.Error as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        log.error("refresh failed", error=message, mode=mode)
        return RefreshResult(
            view=view.name,
            status="failed",
            mode=mode,
            duration_ms=0.0,
            rows=None,
            staleness_seconds=staleness,
            finished_at=_now(conn),
            error=f"{type(exc).__name__}: {message}",
            warning=warning,
            days=span,
        )
    log.info("refreshed", mode=mode, duration_ms=round(duration_ms, 1), rows=rows, days=span)
    return RefreshResult(
        view=view.name,
        status="refreshed",
        mode=mode,
        duration_ms=duration_ms,
        rows=rows,
        staleness_seconds=staleness,
        finished_at=_now(conn),
        error=None,
        warning=warning,
        days=span,
    )


def refresh_all(
    conn: Conn,
    policy: settings.ViewsPolicy,
    *,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
    days: tuple[date, date] | None = None,
) -> list[RefreshResult]:
    """Every selected view in dependency order; a failure does not stop the others.

    ``days``: what rollups recompute (default: their trailing days), e.g. a backfill's range.
    """
    return [
        refresh_and_record(
            conn, view, policy=policy, flow_run_id=flow_run_id, operation_id=operation_id, days=days
        )
        for view in plan(conn, policy)
    ]


def replay(conn: Conn, day: date | None, ctx: ReplayContext) -> Replayed:
    """Backfill: every view once for the range; rollups recompute exactly the range's days."""
    results = refresh_all(
        conn, ctx.policy.views, flow_run_id=ctx.flow_run_id, operation_id=ctx.operation_id, days=ctx.days
    )
    failed = [r.view for r in results if r.status == "failed"]
    counts = {"refreshed": len(results) - len(failed), "failed": len(failed)}
    if failed:
        return Replayed(True, "refresh failed: " + ", ".join(failed), counts)
    return Replayed(False, f"{len(results)} views refreshed", counts)
