"""Materialized view refresh (replaces the seed's "View Refresh (every 15 minutes)" pg_cron job).

Every materialized view of the tended schema (minus the policy's deny list, or only its allow
list) is refreshed in dependency order: a view that reads another materialized view (directly or
through ordinary views) refreshes after it. ``CONCURRENTLY`` when the view is populated and has a
unique index over plain columns without a WHERE clause; otherwise a plain refresh (ACCESS
EXCLUSIVE: readers wait) under a short ``lock_timeout``, with a warning that names the missing
index. One run at a time (advisory lock; the deployment also cancels new runs while one runs).

Rollups come first: a table ``T`` with a function ``refresh_T(date, date)`` (0010's
``learning_events_daily``, read through the view ``mv_daily_learning_events``) is recomputed for
the trailing ``rollup_days`` UTC days only, so its cost follows a day's data, not the history;
backfill recomputes the days it re-runs. Per view or rollup: duration, rows and staleness into
``capacity_planning_metrics``. A failing one does not stop the others; the run ends Failed
(ProblemsFound) when any failed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from pydantic import Field

from flows.core import metrics
from flows.core.db import load_sql, set_local
from flows.core.engine import (
    Cron,
    Done,
    JobSpec,
    Outcome,
    Overlap,
    Params,
    Phase,
    Plan,
    Planning,
    ProblemsFound,
    ReplayContext,
    Replayed,
    Replays,
    Run,
    step,
)
from flows.core.engine.forms import DryRun
from flows.core.errors import ConfigError
from flows.core.logs import get_logger
from flows.core.policy import settings

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "views"


@dataclass(frozen=True, kw_only=True)
class MatView:
    name: str
    populated: bool
    unique_index: str | None
    depends_on: tuple[str, ...]
    # A rollup table: recomputed for a range of days by this function instead of REFRESH.
    rollup_function: str | None = None

    @property
    def concurrent(self) -> bool:
        """REFRESH ... CONCURRENTLY needs a populated view and a usable unique index."""
        return self.rollup_function is None and self.populated and self.unique_index is not None

    @property
    def mode(self) -> str:
        if self.rollup_function is not None:
            return "rollup"
        return "concurrently" if self.concurrent else "plain"

    def warning(self) -> str | None:
        if self.rollup_function is not None:
            return None
        if self.unique_index is None:
            return (
                f"materialized view {self.name} has no unique index over plain columns without a WHERE"
                f" clause (e.g. CREATE UNIQUE INDEX {self.name}_key ON {self.name} (<key columns>)):"
                " refreshed without CONCURRENTLY, which blocks its readers"
            )
        if not self.populated:
            return f"materialized view {self.name} is not populated: first refresh is a plain one"
        return None


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


def discover(conn: Conn, schema: str = "public") -> list[MatView]:
    """Rollup tables (see the module doc) and materialized views of the schema."""
    rollups = conn.execute(load_sql("queries/views/rollups.sql"), {"schema": schema}).fetchall()
    rows = conn.execute(load_sql("queries/views/matviews.sql"), {"schema": schema}).fetchall()
    return [
        MatView(name=str(r[0]), populated=True, unique_index=None, depends_on=(), rollup_function=str(r[1]))
        for r in rollups
    ] + [
        MatView(name=str(r[0]), populated=bool(r[1]), unique_index=r[2], depends_on=tuple(r[3])) for r in rows
    ]


def select_views(
    views: list[MatView], include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> list[MatView]:
    """Apply the allow/deny lists; a name that is not a materialized view or rollup is a ConfigError."""
    known = {v.name for v in views}
    for listed, label in ((include, "include"), (exclude, "exclude")):
        missing = sorted(set(listed) - known)
        if missing:
            raise ConfigError(
                f"views.{label} names {missing[0]!r}, which is not a materialized view or rollup table"
            )
    return [v for v in views if (not include or v.name in include) and v.name not in exclude]


def refresh_order(views: list[MatView]) -> list[MatView]:
    """Rollups first (views may read them), then topological order (dependencies first, ties by
    name); dependencies not selected are ignored."""
    by_name = {v.name: v for v in views}
    pending = {v.name: {d for d in v.depends_on if d in by_name} for v in views}
    ordered: list[MatView] = []
    while pending:
        ready = sorted(name for name, deps in pending.items() if not deps)
        if not ready:
            raise ConfigError(f"materialized views depend on each other in a cycle: {sorted(pending)}")
        for name in ready:
            ordered.append(by_name[name])
            del pending[name]
        for deps in pending.values():
            deps.difference_update(ready)
    return sorted(ordered, key=lambda v: v.rollup_function is None)  # stable: keeps the order


def plan(conn: Conn, policy: settings.ViewsPolicy) -> list[MatView]:
    """What a run refreshes, in order; a schema that does not exist is bad input (a typo would
    otherwise refresh nothing, every run, and say done)."""
    row = conn.execute(load_sql("queries/views/schema_exists.sql"), {"schema": policy.schema_name}).fetchone()
    if not (row and row[0]):
        raise ConfigError(f"[views] schema_name {policy.schema_name!r}: no such schema in this database")
    return refresh_order(select_views(discover(conn, policy.schema_name), policy.include, policy.exclude))


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
    mode = view.mode
    span: str | None = None  # a rollup's recomputed days
    if view.rollup_function is not None:
        days = days or rollup_days(started_at.astimezone(UTC).date(), policy)
        span = f"{days[0]}..{days[1]}"
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
        result = RefreshResult(
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
    else:
        log.info("refreshed", mode=mode, duration_ms=round(duration_ms, 1), rows=rows, days=span)
        result = RefreshResult(
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
    metrics.record(
        conn,
        measurements(result),
        measured_at=result.finished_at,
        flow_run_id=flow_run_id,
        operation_id=operation_id,
    )
    return result


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


# --- the job -------------------------------------------------------------------------------------


class ViewsParams(Params):
    dry_run: DryRun = Field(False, description="Report what would change; change nothing.")


@step("views-plan")
def plan_step(run: Run) -> list[dict[str, Any]]:
    with run.connection() as conn:
        return [
            {**asdict(v), "concurrent": v.concurrent, "mode": v.mode, "warning": v.warning()}
            for v in plan(conn, run.policy.views)
        ]


@step("views-refresh", task_run_name="refresh-{name}")
def refresh_step(
    run: Run, name: str, populated: bool, unique_index: str | None, rollup_function: str | None = None
) -> dict[str, Any]:
    view = MatView(
        name=name,
        populated=populated,
        unique_index=unique_index,
        depends_on=(),
        rollup_function=rollup_function,
    )
    with run.connection() as conn:
        result = refresh_and_record(
            conn, view, policy=run.policy.views, flow_run_id=run.flow_run_id, operation_id=run.operation_id
        )
    if result.warning:
        get_logger(job=JOB, view=name).warning(result.warning)
    if result.error:
        get_logger(job=JOB, view=name).error("view refresh failed", error=result.error)
    out = asdict(result)
    out["finished_at"] = result.finished_at.isoformat()
    return out


def refresh_run(run: Run, dry_run: bool) -> Outcome:
    """The job's work: plan, then one step per view in dependency order."""
    log = get_logger(job=JOB)
    planned = plan_step(run)
    run.record(views=len(planned))
    if dry_run:
        for item in planned:
            log.info("would refresh", view=item["name"], mode=item["mode"])
        return Done(
            result={"dry_run": True, "plan": planned}, message=f"would refresh {len(planned)} view(s)"
        )
    results = []
    for item in planned:
        results.append(
            refresh_step(run, item["name"], item["populated"], item["unique_index"], item["rollup_function"])
        )
        run.record(refreshed=sum(1 for r in results if r["status"] != "failed"))
    failed = [r["view"] for r in results if r["status"] == "failed"]
    run.record(
        refreshed=len(results) - len(failed),
        failed=len(failed),
        plain=sum(1 for r in results if r["mode"] == "plain"),
        rollups=sum(1 for r in results if r["mode"] == "rollup"),
    )
    log.info("views refreshed", refreshed=len(results) - len(failed), failed=failed)
    result = {
        "refreshed": len(results) - len(failed),
        "failed": failed,
        "views": results,
        "warnings": [r["warning"] for r in results if r["warning"]],
    }
    if failed:
        errors = {r["view"]: r["error"] for r in results if r["status"] == "failed"}
        return ProblemsFound(
            findings=[f"{v}: {e}" for v, e in errors.items()],
            summary=f"{len(failed)} materialized view(s) failed to refresh",
            result=result,
        )
    return Done(result=result, message=f"{len(results)} view(s) refreshed")


def plan_run(planning: Planning, params: ViewsParams) -> Plan:
    """A bad include/exclude list is bad input here, before the lock or the ledger is touched."""
    plan(planning.conn, planning.policy.views)
    return Plan(work=lambda run: refresh_run(run, params.dry_run), params={"dry_run": params.dry_run})


SPEC = JobSpec(
    name=JOB,
    description="Refresh the managed materialized views in dependency order, never two runs at once.",
    params=ViewsParams,
    plan=plan_run,
    schedule=Cron("*/15 * * * *"),
    overlap=Overlap.CANCEL_NEW,
    tags=("maintenance",),
    replay=Replays(replay, phase=Phase.AFTER),
)
