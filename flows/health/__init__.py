"""Health monitoring (replaces the seed's "Health Monitoring (every 5 minutes)" pg_cron job).

Runs every probe of ``flows.health.probes`` — the seed README's alerting thresholds, PostgreSQL health,
the partition horizon and the job watchdog — each in its own READ ONLY transaction with a short
statement and lock timeout, so a probe can neither write nor wait behind a heavy lock. Each check
writes one current row per (check, target, window) into ``data_quality_checks`` (window: the
5-minute bucket the run started in; a re-run supersedes the current row) and its measurements into
``capacity_planning_metrics``. A run with any failed check ends Failed (ProblemsFound, exit 1) after
recording everything, with a table artifact summarising the checks. Its crash watchdog
(``flows.health.crashes``) marks every other job's dead runs abandoned and pages each such job once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from flows.alerts import alerting
from flows.core import clock, markdown, metrics
from flows.core.db import load_sql, set_local
from flows.core.engine import Cron, Done, JobSpec, Outcome, Overlap, Params, Plan, ProblemsFound, Run, step
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.health import alerts, checks, crashes, probes

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "health"
WINDOW = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class ProbeRun:
    now: datetime
    window_start: datetime
    window_end: datetime
    results: list[checks.CheckResult]
    probe_ms: dict[str, float]

    @property
    def db_ms(self) -> float:
        return sum(self.probe_ms.values())

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def window_of(now: datetime) -> tuple[datetime, datetime]:
    """The 5-minute bucket (UTC, aligned to the epoch) that ``now`` falls in."""
    start = _EPOCH + ((now - _EPOCH) // WINDOW) * WINDOW
    return start, start + WINDOW


def run_probes(
    conn: Conn,
    policy: settings.HealthPolicy,
    *,
    now: datetime,
    schema: str = "public",
    schedules: dict[str, str] | None = None,
    timezones: dict[str, str] | None = None,
    only: tuple[str, ...] | None = None,
    dsn: str | None = None,
) -> ProbeRun:
    """Every probe (or ``only`` these) in its own read-only transaction; a probe error is a row.

    ``schedules``: job -> cron for the watchdog, read in ``timezones[job]`` (default UTC)."""
    ctx = checks.Context(
        now=now, schema=schema, schedules=dict(schedules or {}), timezones=dict(timezones or {}), dsn=dsn
    )
    results: list[checks.CheckResult] = []
    timings: dict[str, float] = {}
    for name, probe in probes.PROBES.items():
        if only is not None and name not in only:
            continue
        started = time.perf_counter()
        try:
            with conn.transaction():
                set_local(conn, "transaction_read_only", "on")
                set_local(conn, "statement_timeout", f"{policy.probe_statement_timeout_ms}ms")
                set_local(conn, "lock_timeout", f"{policy.probe_lock_timeout_ms}ms")
                results.extend(probe(conn, policy, ctx))
        except psycopg.Error as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            get_logger(job=JOB, probe=name).error("probe failed", error=message)
            results.append(
                checks.CheckResult(
                    check_name=f"health.{name}",
                    target="database",
                    status=checks.ERROR,
                    details={"error": f"{type(exc).__name__}: {message}"},
                )
            )
        timings[name] = (time.perf_counter() - started) * 1000.0
    start, end = window_of(now)
    return ProbeRun(now, start, end, results, timings)


def record(
    conn: Conn, run: ProbeRun, *, flow_run_id: str | None = None, operation_id: UUID | None = None
) -> tuple[int, int]:
    """Write the check rows (superseding the window's current rows) and the measurements."""
    insert = load_sql("queries/health/insert_check.sql")
    supersede = load_sql("queries/health/supersede.sql")
    with conn.transaction():
        for r in run.results:
            key = {
                "check_name": r.check_name,
                "target": r.target,
                "window_start": run.window_start,
                "window_end": run.window_end,
            }
            conn.execute(supersede, key)
            conn.execute(
                insert,
                {
                    **key,
                    "status": r.status,
                    "observed": Jsonb(r.observed) if r.observed is not None else None,
                    "expected": Jsonb(r.expected) if r.expected is not None else None,
                    "threshold": r.threshold,
                    "details": Jsonb({**r.details, "probe_run_at": run.now.isoformat()}),
                    "flow_run_id": flow_run_id,
                },
            )
    measurements = [
        metrics.Measurement(
            metric, "health", r.target, value, unit, {"check": r.check_name, "status": r.status}
        )
        for r in run.results
        for metric, value, unit in r.metrics
    ]
    measurements += [
        metrics.Measurement(metric, "health", resource, value, unit, {"check": r.check_name})
        for r in run.results
        for metric, resource, value, unit in r.resource_metrics
    ]
    measurements.append(
        metrics.Measurement("health.run_db_ms", "health", "health", run.db_ms, "ms", run.probe_ms)
    )
    written = metrics.record(
        conn, measurements, measured_at=run.now, flow_run_id=flow_run_id, operation_id=operation_id
    )
    return len(run.results), written


def summary_rows(run: ProbeRun) -> list[dict[str, Any]]:
    """One row per check, for the table artifact and the flow's result."""
    out = []
    for r in run.results:
        observed = r.observed or {}
        # the headline number of each check
        head = next(
            (
                observed[k]
                for k in observed
                if isinstance(observed[k], int | float) and not isinstance(observed[k], bool)
            ),
            None,
        )
        out.append(
            {
                "check": r.check_name,
                "target": r.target,
                "status": r.status,
                "observed": round(head, 3) if isinstance(head, float) else head,
                "threshold": r.threshold,
                "expected": r.expected,
                "note": r.details.get("reason") or r.details.get("error") or r.details.get("source") or "",
            }
        )
    return out


# --- the job -------------------------------------------------------------------------------------


@step("health-probes")
def probes_step(job_run: Run) -> dict[str, Any]:
    policy = job_run.policy
    planned = job_run.registry.schedules(policy)  # what the watchdog expects, each in its own time zone
    with job_run.connection() as conn:
        run = run_probes(
            conn,
            policy.health,
            now=clock.db_now(conn),
            schedules={job: s.cron for job, s in planned.items()},
            timezones={job: s.timezone for job, s in planned.items()},
            dsn=job_run.target.dsn,
        )
        written, metrics = record(
            conn, run, flow_run_id=job_run.flow_run_id, operation_id=job_run.operation_id
        )
    return {
        "window_start": run.window_start.isoformat(),
        "checks": written,
        "metrics_written": metrics,
        "db_ms": run.db_ms,
        "probe_ms": run.probe_ms,
        "counts": {
            s: run.count(s)
            for s in (checks.PASSED, checks.WARNING, checks.FAILED, checks.ERROR, checks.SKIPPED)
        },
        "rows": summary_rows(run),
    }


@step("health-alerts", retries=0)
def alerts_step(run: Run, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Record the checks that started failing or cleared, then the crash watchdog
    (``flows.health.crashes``: other jobs' dead runs abandoned, their ``job.<job>`` recorded). The
    pages and resolves that became due go out after the run, outside its lock: a slow receiver never
    holds the health lock."""
    with run.connection() as conn:
        due = alerting.record(conn, JOB, alerts.observations(rows), target=run.target.name)
        crashed = crashes.page_crashes(conn, run)
    return {**due, **crashed}


def health_run(run: Run) -> Outcome:
    """The job's work: every probe once, then a summary artifact."""
    log = get_logger(job=JOB)
    budget_ms = run.policy.health.budget_ms
    out = probes_step(run)
    run.record(
        **out["counts"],
        checks=out["checks"],
        metrics_written=out["metrics_written"],
        db_ms=round(out["db_ms"], 1),
    )
    counts = out["counts"]
    run.record(alerts=alerts_step(run, out["rows"]))
    run.artifact(
        "table",
        table=markdown.rows(out["rows"]),
        key="health-summary",
        description=(
            f"Health window {out['window_start']}: {counts['failed']} failed, {counts['error']} error,"
            f" {counts['warning']} warning, {counts['passed']} passed, {counts['skipped']} skipped;"
            f" database time {out['db_ms']:.0f} ms (budget {budget_ms} ms)"
        ),
    )
    if out["db_ms"] > budget_ms:
        log.warning(
            "health run over its database-time budget", db_ms=round(out["db_ms"], 1), budget_ms=budget_ms
        )
    log.info("health checked", **counts, db_ms=round(out["db_ms"], 1))
    # the per-check rows are in the artifact and data_quality_checks; the result stays small
    result = {k: v for k, v in out.items() if k != "rows"}
    failing = [r for r in out["rows"] if r["status"] in (checks.FAILED, checks.ERROR)]
    if failing:
        return ProblemsFound(
            findings=[
                f"{r['check']}[{r['target']}] {r['status']}: observed {r['observed']}, limit {r['threshold']}"
                for r in failing
            ],
            summary=f"{len(failing)} health check(s) failed",
            result=result,
        )
    return Done(result=result, message=f"{counts['passed']} check(s) passed")


class HealthParams(Params):
    """The health job takes no parameters."""


SPEC = JobSpec(
    name=JOB,
    description="Run every health probe once; Failed (problems found) when any check failed.",
    params=HealthParams,
    plan=lambda planning, params: Plan(work=health_run),
    schedule=Cron("*/5 * * * *"),
    overlap=Overlap.CANCEL_NEW,
    tags=("monitoring",),
)
