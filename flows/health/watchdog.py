"""The job watchdog (late or failing pgtender jobs) and failed pg_cron runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg.errors

from flows.core import pgcron
from flows.core.policy.settings import HealthPolicy
from flows.core.schedules import expected_period
from flows.health.checks import (
    FAILED,
    PASSED,
    SKIPPED,
    CheckResult,
    Context,
    health_sql,
)

Conn = psycopg.Connection[tuple[Any, ...]]


def job_watchdog(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Every scheduled job succeeded within grace_factor x its schedule's period (a run that only
    found problems counts: the watchdog asks whether the job still runs, see job_runs.sql).

    A job that never succeeded is late once pgtender's first ledger row here is older than that;
    before, it is skipped (a fresh install has not had the chance yet).
    """
    jobs = sorted(j for j in ctx.schedules if j not in policy.watchdog_ignore)
    if not jobs:
        return []
    rows = conn.execute(health_sql("job_runs"), {"jobs": jobs}).fetchall()
    return [
        judge(job, last_success=success, last_start=start, first_op=first, policy=policy, ctx=ctx)
        for job, success, start, first in rows
    ]


def judge(
    job: str,
    *,
    last_success: datetime | None,
    last_start: datetime | None,
    first_op: datetime | None,
    policy: HealthPolicy,
    ctx: Context,
) -> CheckResult:
    """The watchdog's verdict on one job at ``ctx.now`` from its ledger's last success and start
    and pgtender's first ledger row here (see ``job_watchdog``)."""
    period = expected_period(ctx.schedules[job], ctx.now, ctx.timezones.get(job, "UTC"))
    allowed = period * policy.watchdog_grace_factor
    observed: dict[str, Any] = {
        "last_success": last_success.isoformat() if last_success else None,
        "last_start": last_start.isoformat() if last_start else None,
        "period_seconds": period.total_seconds(),
        "allowed_seconds": allowed.total_seconds(),
    }
    details: dict[str, Any] = {"schedule": ctx.schedules[job]}
    metrics: list[tuple[str, float, str]] = []
    if last_success is not None:
        age = (ctx.now - last_success).total_seconds()
        observed = {"age_seconds": age, **observed}  # the headline number first
        metrics.append(("health.job_success_age_seconds", age, "seconds"))
        status = FAILED if age > allowed.total_seconds() else PASSED
    elif first_op is not None and ctx.now - first_op > allowed:
        status = FAILED
        details["reason"] = f"never succeeded since pgtender's first run here at {first_op.isoformat()}"
    else:
        status = SKIPPED
        details["reason"] = "never succeeded yet, and pgtender started here less than one allowed period ago"
    return CheckResult(
        check_name="health.job_watchdog",
        target=job,
        status=status,
        observed=observed,
        threshold=allowed.total_seconds(),
        expected=f"last success within {allowed.total_seconds():g} s",
        details=details,
        metrics=metrics,
    )


def cron_jobs(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Failures of the pg_cron jobs still scheduled here (while pgtender takes them over)."""

    name, target = "health.cron_failures", "pg_cron"
    _here, cron_db, _this = pgcron.location(conn)
    if cron_db is None:
        return [
            CheckResult(
                check_name=name, target=target, status=SKIPPED, details={"reason": "pg_cron is not installed"}
            )
        ]
    since = ctx.now - timedelta(minutes=policy.cron_lookback_minutes)
    failures = pgcron.cron_failures(conn, since, ctx.dsn)
    jobs = sorted({f.jobname or str(f.jobid) for f in failures})
    observed = {"failed_runs": len(failures), "jobs": jobs}
    details: dict[str, Any] = {
        "since": since.isoformat(),
        "last_failures": [
            {"job": f.jobname, "replaced_by": f.replaced_by, "message": f.return_message}
            for f in failures[:5]
        ],
    }
    status = FAILED if failures else PASSED
    return [
        CheckResult(
            check_name=name,
            target=target,
            status=status,
            observed=observed,
            threshold=0.0,
            expected="no failed pg_cron runs",
            details=details,
            metrics=[("health.cron_failed_runs", float(len(failures)), "runs")],
        )
    ]
