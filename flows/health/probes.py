"""Health probes: plain functions over a connection, each returning check results.

Every probe reads only (catalog, statistics views, indexed ranges of the data tables) and takes
``now`` from the caller so that a probe's observed value is exact and testable. Thresholds come
from ``settings.HealthPolicy`` (the seed README's alerting thresholds are its defaults).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from flows.core import pgcron
from flows.core.db import load_sql
from flows.core.outcomes import CheckStatus
from flows.core.schedules import expected_period
from flows.core.settings import HealthPolicy

Conn = psycopg.Connection[tuple[Any, ...]]

PASSED, WARNING, FAILED, ERROR, SKIPPED = (
    CheckStatus.PASSED,
    CheckStatus.WARNING,
    CheckStatus.FAILED,
    CheckStatus.ERROR,
    CheckStatus.SKIPPED,
)


@dataclass(frozen=True)
class Context:
    now: datetime
    schema: str = "public"
    # job -> cron, for the watchdog (flows.core.schedules.SCHEDULES by default)
    schedules: dict[str, str] = field(default_factory=dict)
    # job -> the IANA zone its cron is read in (absent: UTC), as the deployment reads it
    timezones: dict[str, str] = field(default_factory=dict)


@dataclass
class CheckResult:
    check_name: str
    target: str
    status: str
    observed: dict[str, Any] | None = None
    threshold: float | None = None
    expected: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # (metric_name, value, unit) for capacity_planning_metrics
    metrics: list[tuple[str, float, str]] = field(default_factory=list)
    # (metric_name, resource_name, value, unit) for measurements of other resources than the target
    resource_metrics: list[tuple[str, str, float, str]] = field(default_factory=list)


def _q(name: str) -> bytes:
    return load_sql(f"queries/health/{name}.sql")


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _over(value: float, limit: float) -> str:
    return FAILED if value > limit else PASSED


# --- the seed README's alerting thresholds ---------------------------------------------------------


def event_lag(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Lag = now - newest event that has occurred; also the worst ingestion delay of recent events.

    A stopped ingestion ages the newest event; late ingestion shows in both numbers.
    """
    limit = policy.event_lag_max_seconds
    row = conn.execute(
        _q("event_lag"), {"now": ctx.now, "lookback": timedelta(minutes=policy.lookback_minutes)}
    ).fetchone()
    assert row is not None
    newest, max_delay, recent = row
    name, target = "health.event_lag", "learning_events"
    if newest is None:
        return [CheckResult(name, target, SKIPPED, threshold=limit, details={"reason": "no events yet"})]
    lag = (ctx.now - newest).total_seconds()
    delay = _seconds(max_delay)
    worst = max(lag, delay or 0.0)
    observed = {
        "lag_seconds": lag,
        "newest_event_at": newest.isoformat(),
        "max_ingest_delay_seconds": delay,
        "recent_events": int(recent),
    }
    metrics = [("health.event_lag_seconds", lag, "seconds")]
    if delay is not None:
        metrics.append(("health.event_ingest_delay_seconds", delay, "seconds"))
    return [CheckResult(name, target, _over(worst, limit), observed, limit, f"<= {limit:g} s", {}, metrics)]


def model_accuracy(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Drop of the latest evaluation from the baseline, in percent of the baseline, per model."""
    limit = policy.accuracy_drop_max_pct
    rows = conn.execute(
        _q("model_accuracy"), {"metrics": list(policy.accuracy_metrics), "now": ctx.now}
    ).fetchall()
    if not rows:
        reason = "no model has both a baseline and a later evaluation"
        return [
            CheckResult(
                "health.model_accuracy",
                "model_evaluations",
                SKIPPED,
                threshold=limit,
                details={"reason": reason},
            )
        ]
    out = []
    for name, version, metric, baseline, latest, evaluated_at in rows:
        target = f"{name}@{version}:{metric}"
        if baseline is None or baseline <= 0:
            out.append(
                CheckResult(
                    "health.model_accuracy",
                    target,
                    SKIPPED,
                    threshold=limit,
                    details={"reason": "baseline <= 0"},
                )
            )
            continue
        drop = (float(baseline) - float(latest)) / float(baseline) * 100.0
        observed = {
            "drop_pct": drop,
            "baseline": float(baseline),
            "latest": float(latest),
            "evaluated_at": evaluated_at.isoformat(),
        }
        out.append(
            CheckResult(
                "health.model_accuracy",
                target,
                _over(drop, limit),
                observed,
                limit,
                f"drop <= {limit:g} %",
                {},
                [("health.model_accuracy_drop_pct", drop, "percent")],
            )
        )
    return out


def _pg_stat_statements(conn: Conn) -> tuple[list[tuple[Any, ...]], str | None]:
    """Rows of pg_stat_statements, or none and why not (not installed / not loaded / no rights)."""
    row = conn.execute(_q("has_pg_stat_statements")).fetchone()
    if row is None:
        return [], "pg_stat_statements is not installed in this database"
    try:
        with conn.transaction():  # a savepoint: an unusable view must not abort the probe
            return conn.execute(_q("query_stats_pgss")).fetchall(), None
    except (
        psycopg.errors.ObjectNotInPrerequisiteState,
        psycopg.errors.InsufficientPrivilege,
        psycopg.errors.UndefinedColumn,
    ) as exc:
        return [], f"pg_stat_statements is unusable: {' '.join(str(exc).split())}"


def query_response(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Mean execution time against baseline: pg_stat_statements when usable, else query logs."""
    limit = policy.query_slowdown_max_ratio
    name, target = "health.query_response", "queries"
    baseline_window = timedelta(days=policy.query_baseline_days)
    metrics: list[tuple[str, float, str]] = []
    per_query: list[tuple[str, str, float, str]] = []
    pgss_rows, why_not = _pg_stat_statements(conn)
    compared: list[dict[str, Any]] = []
    source = "pg_stat_statements"
    if pgss_rows:
        ids = [f"queryid:{r[0]}" for r in pgss_rows]
        base: dict[str, float] = dict(
            conn.execute(
                _q("query_baseline_pgss"), {"now": ctx.now, "baseline": baseline_window, "ids": ids}
            ).fetchall()
        )
        for queryid, calls, mean_ms in pgss_rows:
            per_query.append(("health.query_mean_ms", f"queryid:{queryid}", float(mean_ms), "ms"))
            b = base.get(f"queryid:{queryid}")
            if b:
                compared.append(
                    {
                        "query": str(queryid),
                        "mean_ms": float(mean_ms),
                        "baseline_ms": float(b),
                        "calls": int(calls),
                    }
                )
        if not compared:
            why_not = "pg_stat_statements has no baseline yet (recorded by this run for the next ones)"
    if not compared:
        source = "query_performance_logs"
        rows = conn.execute(
            _q("query_logs"),
            {
                "now": ctx.now,
                "lookback": timedelta(minutes=policy.query_lookback_minutes),
                "baseline": baseline_window,
            },
        ).fetchall()
        compared = [
            {
                "query": fp,
                "mean_ms": float(mean),
                "baseline_ms": float(b),
                "calls": int(calls),
                "baseline_source": bs,
            }
            for fp, mean, calls, b, bs in rows
            if b is not None and b > 0
        ]
    details: dict[str, Any] = {"source": source}
    if why_not:
        details["pg_stat_statements"] = why_not
    if not compared:
        details["reason"] = "neither pg_stat_statements nor query_performance_logs has comparable data"
        return [
            CheckResult(
                name,
                target,
                SKIPPED,
                {"source": None},
                limit,
                f"<= {limit:g} x baseline",
                details,
                metrics,
                per_query,
            )
        ]
    for c in compared:
        c["ratio"] = c["mean_ms"] / c["baseline_ms"]
    compared.sort(key=lambda c: (-c["ratio"], c["query"]))
    worst = compared[0]
    observed = {
        "max_ratio": worst["ratio"],
        "query": worst["query"],
        "queries_compared": len(compared),
        "over_threshold": sum(1 for c in compared if c["ratio"] > limit),
        "source": source,
    }
    details["worst"] = compared[:5]
    metrics.append(("health.query_slowdown_ratio", worst["ratio"], "ratio"))
    status = _over(worst["ratio"], limit)
    return [
        CheckResult(
            name, target, status, observed, limit, f"<= {limit:g} x baseline", details, metrics, per_query
        )
    ]


def quality_score(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Share of passing checks (passed or warning) among the latest window's quality results."""
    limit = policy.quality_score_min_pct
    name, target = "health.quality_score", "data_quality_checks"
    row = conn.execute(_q("quality_score"), {"now": ctx.now}).fetchone()
    if row is None or not row[2]:
        return [
            CheckResult(name, target, SKIPPED, threshold=limit, details={"reason": "no quality results yet"})
        ]
    window_end, passing, counted, failing = row
    score = 100.0 * passing / counted
    observed = {
        "score_pct": score,
        "passing": passing,
        "counted": counted,
        "failing": failing,
        "window_end": window_end.isoformat(),
    }
    status = FAILED if score < limit else PASSED
    return [
        CheckResult(
            name,
            target,
            status,
            observed,
            limit,
            f">= {limit:g} %",
            {},
            [("health.quality_score_pct", score, "percent")],
        )
    ]


def resource_utilization(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Latest resource_utilization sample per resource, and connections / max_connections."""
    limit = policy.resource_utilization_max_pct
    out: list[CheckResult] = []
    rows = conn.execute(
        _q("resource_utilization"), {"now": ctx.now, "lookback": timedelta(minutes=policy.lookback_minutes)}
    ).fetchall()
    if not rows:
        out.append(
            CheckResult(
                "health.resource_utilization",
                "resource_utilization",
                SKIPPED,
                threshold=limit,
                details={"reason": f"no samples in the last {policy.lookback_minutes} minutes"},
            )
        )
    else:
        samples = sorted(
            (
                {"resource": f"{t}:{n}" + (f"@{h}" if h else ""), "pct": float(p), "at": at.isoformat()}
                for t, n, h, p, at in rows
            ),
            key=lambda s: (-s["pct"], s["resource"]),
        )
        worst = samples[0]
        observed = {
            "max_pct": worst["pct"],
            "resource": worst["resource"],
            "resources": len(samples),
            "over_threshold": sum(1 for s in samples if s["pct"] > limit),
        }
        out.append(
            CheckResult(
                "health.resource_utilization",
                "resource_utilization",
                _over(worst["pct"], limit),
                observed,
                limit,
                f"<= {limit:g} %",
                {"worst": samples[:5]},
                [("health.resource_utilization_max_pct", worst["pct"], "percent")],
            )
        )
    row = conn.execute(_q("connections")).fetchone()
    assert row is not None
    used, max_conn, reserved = (int(v) for v in row)
    pct = 100.0 * used / max_conn
    out.append(
        CheckResult(
            "health.connection_utilization",
            "connections",
            _over(pct, limit),
            {"pct": pct, "used": used, "max_connections": max_conn, "superuser_reserved": reserved},
            limit,
            f"<= {limit:g} %",
            {},
            [("health.connection_utilization_pct", pct, "percent")],
        )
    )
    return out


# --- PostgreSQL health -----------------------------------------------------------------------------


def sessions(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Long transactions, idle-in-transaction sessions and blocked lock waits of this database."""
    rows = conn.execute(_q("sessions")).fetchall()
    cols = ("pid", "state", "xact_seconds", "state_seconds", "waiting", "blockers", "query")
    sess = [dict(zip(cols, r, strict=True)) for r in rows]

    def result(
        check: str, limit: float, offenders: list[dict[str, Any]], key: str, metric: str
    ) -> CheckResult:
        offenders = sorted(offenders, key=lambda s: -float(s[key] or 0.0))
        observed = {"count": len(offenders), "max_seconds": float(offenders[0][key]) if offenders else 0.0}
        sample = [
            {
                "pid": s["pid"],
                "state": s["state"],
                "seconds": round(float(s[key] or 0.0), 3),
                "query": s["query"],
            }
            for s in offenders[:5]
        ]
        return CheckResult(
            check,
            "pg_stat_activity",
            FAILED if offenders else PASSED,
            observed,
            limit,
            f"no session over {limit:g} s",
            {"offenders": sample},
            [(metric, float(len(offenders)), "sessions")],
        )

    long_limit = policy.long_transaction_max_seconds
    idle_limit = policy.idle_in_transaction_max_seconds
    wait_limit = policy.lock_wait_max_seconds
    return [
        result(
            "health.long_transactions",
            long_limit,
            [s for s in sess if (s["xact_seconds"] or 0.0) > long_limit],
            "xact_seconds",
            "health.long_transactions",
        ),
        result(
            "health.idle_in_transaction",
            idle_limit,
            [
                s
                for s in sess
                if str(s["state"]).startswith("idle in transaction")
                and (s["state_seconds"] or 0.0) > idle_limit
            ],
            "state_seconds",
            "health.idle_in_transaction",
        ),
        result(
            "health.lock_waits",
            wait_limit,
            [
                s
                for s in sess
                if s["waiting"] and s["blockers"] > 0 and (s["state_seconds"] or 0.0) > wait_limit
            ],
            "state_seconds",
            "health.blocked_lock_waits",
        ),
    ]


def xid_age(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Transaction-ID age of the database and its oldest relation (wraparound protection)."""
    row = conn.execute(_q("xid_age")).fetchone()
    assert row is not None
    db_age, oldest, rel_age = int(row[0]), row[1], int(row[2] or 0)
    worst = max(db_age, rel_age)
    status = FAILED if worst >= policy.xid_age_max else WARNING if worst >= policy.xid_age_warning else PASSED
    observed = {"age": worst, "database_age": db_age, "oldest_relation": oldest, "relation_age": rel_age}
    return [
        CheckResult(
            "health.xid_age",
            "database",
            status,
            observed,
            float(policy.xid_age_max),
            f"< {policy.xid_age_warning} (warning), < {policy.xid_age_max} (failed)",
            {},
            [("health.xid_age", float(worst), "xids")],
        )
    ]


def replication(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    limit = policy.replication_lag_max_seconds
    row = conn.execute(_q("replication"), {"max_lag": limit}).fetchone()
    assert row is not None
    in_recovery, replay_age, replicas, max_lag, lagging = row
    name, target = "health.replication_lag", "replicas"
    if in_recovery:
        details = {
            "reason": "this server is a replica; replication lag is probed on the primary",
            "replay_age_seconds": replay_age,
        }
        return [CheckResult(name, target, SKIPPED, threshold=limit, details=details)]
    if not replicas:
        return [CheckResult(name, target, SKIPPED, {"replicas": 0}, limit, details={"reason": "no replicas"})]
    lag = float(max_lag or 0.0)
    observed = {"max_replay_lag_seconds": lag, "replicas": int(replicas), "lagging": lagging}
    return [
        CheckResult(
            name,
            target,
            _over(lag, limit),
            observed,
            limit,
            f"<= {limit:g} s",
            {},
            [("health.replication_lag_seconds", lag, "seconds")],
        )
    ]


def default_partitions(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Rows in DEFAULT partitions (counted up to a cap, so the probe stays cheap)."""
    limit = policy.default_partition_max_rows
    cap = max(policy.default_partition_count_cap, limit + 1)
    out = []
    for parent, default in conn.execute(_q("default_partitions"), {"schema": ctx.schema}).fetchall():
        query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) s").format(
            sql.Identifier(ctx.schema, default)
        )
        row = conn.execute(query, (cap,)).fetchone()
        rows = int(row[0]) if row else 0
        observed = {"rows": rows, "capped": rows >= cap, "default_partition": default}
        status = WARNING if rows > limit else PASSED
        out.append(
            CheckResult(
                "health.default_partition_rows",
                parent,
                status,
                observed,
                float(limit),
                f"<= {limit} rows",
                {},
                [("health.default_partition_rows", float(rows), "rows")],
            )
        )
    return out


def partition_horizon(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Every partitioned table has contiguous partitions covering now + N intervals.

    The interval is the median width of the table's partitions; coverage runs from the partition
    holding ``now`` through every partition that starts where the previous one ends.
    """
    need = policy.partition_min_intervals_ahead
    parents = [r[0] for r in conn.execute(_q("partitioned_tables"), {"schema": ctx.schema}).fetchall()]
    parts: dict[str, list[tuple[str, datetime | None, datetime | None]]] = {}
    for parent, part, lo, hi in conn.execute(_q("partitions"), {"schema": ctx.schema}).fetchall():
        parts.setdefault(parent, []).append((part, lo, hi))
    out = []
    for parent in parents:
        ranges = [(p, lo, hi) for p, lo, hi in parts.get(parent, []) if lo is not None and hi is not None]
        if not ranges:
            reason = "no partitions on a time range (not range-partitioned by time, or none created)"
            out.append(
                CheckResult(
                    "health.partition_horizon", parent, SKIPPED, threshold=need, details={"reason": reason}
                )
            )
            continue
        assert all(lo is not None and hi is not None for _, lo, hi in ranges)
        widths = [(hi - lo).total_seconds() for _, lo, hi in ranges if lo and hi]
        interval = statistics.median(widths)
        by_lower = {lo: (p, hi) for p, lo, hi in ranges}
        current = next(((p, lo, hi) for p, lo, hi in ranges if lo and hi and lo <= ctx.now < hi), None)
        horizon_end: datetime | None = None
        last_partition = None
        if current is not None:
            last_partition, _, horizon_end = current
            while horizon_end in by_lower:
                last_partition, horizon_end = by_lower[horizon_end]
        ahead = 0.0 if horizon_end is None else (horizon_end - ctx.now).total_seconds() / interval
        observed = {
            "intervals_ahead": ahead,
            "horizon_end": horizon_end.isoformat() if horizon_end else None,
            "last_partition": last_partition,
            "interval_seconds": interval,
            "partitions": len(ranges),
        }
        out.append(
            CheckResult(
                "health.partition_horizon",
                parent,
                FAILED if ahead < need else PASSED,
                observed,
                need,
                f">= {need:g} intervals ahead",
                {},
                [("health.partition_intervals_ahead", ahead, "intervals")],
            )
        )
    return out


def job_watchdog(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Every scheduled job succeeded within grace_factor x its schedule's period (a run that only
    found problems counts: the watchdog asks whether the job still runs, see job_runs.sql).

    A job that never succeeded is late once pgtender's first ledger row here is older than that;
    before, it is skipped (a fresh install has not had the chance yet).
    """
    jobs = sorted(j for j in ctx.schedules if j not in policy.watchdog_ignore)
    if not jobs:
        return []
    out = []
    rows = conn.execute(_q("job_runs"), {"jobs": jobs}).fetchall()
    for job, last_success, last_start, first_op in rows:
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
            details["reason"] = (
                "never succeeded yet, and pgtender started here less than one allowed period ago"
            )
        out.append(
            CheckResult(
                "health.job_watchdog",
                job,
                status,
                observed,
                allowed.total_seconds(),
                f"last success within {allowed.total_seconds():g} s",
                details,
                metrics,
            )
        )
    return out


def cron_jobs(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Failures of the pg_cron jobs still scheduled here (while pgtender takes them over)."""

    name, target = "health.cron_failures", "pg_cron"
    _here, cron_db, _this = pgcron.location(conn)
    if cron_db is None:
        return [CheckResult(name, target, SKIPPED, details={"reason": "pg_cron is not installed"})]
    since = ctx.now - timedelta(minutes=policy.cron_lookback_minutes)
    failures = pgcron.cron_failures(conn, since)
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
            name,
            target,
            status,
            observed,
            0.0,
            "no failed pg_cron runs",
            details,
            [("health.cron_failed_runs", float(len(failures)), "runs")],
        )
    ]


Probe = Callable[[Conn, HealthPolicy, Context], list[CheckResult]]

PROBES: dict[str, Probe] = {
    "event_lag": event_lag,
    "model_accuracy": model_accuracy,
    "query_response": query_response,
    "quality_score": quality_score,
    "resource_utilization": resource_utilization,
    "sessions": sessions,
    "xid_age": xid_age,
    "replication": replication,
    "default_partitions": default_partitions,
    "partition_horizon": partition_horizon,
    "job_watchdog": job_watchdog,
    "cron_jobs": cron_jobs,
}
