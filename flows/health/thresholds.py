"""Probes for the seed README's alerting thresholds"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import psycopg.errors

from flows.core.policy.settings import HealthPolicy
from flows.health.checks import (
    FAILED,
    PASSED,
    SKIPPED,
    CheckResult,
    Context,
    health_sql,
    over_limit,
    seconds,
)

Conn = psycopg.Connection[tuple[Any, ...]]

QUERY_RESPONSE = "health.query_response"


def event_lag(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Lag = now - newest event that has occurred; also the worst ingestion delay of recent events.

    A stopped ingestion ages the newest event; late ingestion shows in both numbers.
    """
    limit = policy.event_lag_max_seconds
    row = conn.execute(
        health_sql("event_lag"), {"now": ctx.now, "lookback": timedelta(minutes=policy.lookback_minutes)}
    ).fetchone()
    assert row is not None
    newest, max_delay, recent = row
    name, target = "health.event_lag", "learning_events"
    if newest is None:
        return [
            CheckResult(
                check_name=name,
                target=target,
                status=SKIPPED,
                threshold=limit,
                details={"reason": "no events yet"},
            )
        ]
    lag = (ctx.now - newest).total_seconds()
    delay = seconds(max_delay)
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
    return [
        CheckResult(
            check_name=name,
            target=target,
            status=over_limit(worst, limit),
            observed=observed,
            threshold=limit,
            expected=f"<= {limit:g} s",
            details={},
            metrics=metrics,
        )
    ]


def model_accuracy(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Drop of the latest evaluation from the baseline, in percent of the baseline, per model."""
    limit = policy.accuracy_drop_max_pct
    rows = conn.execute(
        health_sql("model_accuracy"), {"metrics": list(policy.accuracy_metrics), "now": ctx.now}
    ).fetchall()
    if not rows:
        reason = "no model has both a baseline and a later evaluation"
        return [
            CheckResult(
                check_name="health.model_accuracy",
                target="model_evaluations",
                status=SKIPPED,
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
                    check_name="health.model_accuracy",
                    target=target,
                    status=SKIPPED,
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
                check_name="health.model_accuracy",
                target=target,
                status=over_limit(drop, limit),
                observed=observed,
                threshold=limit,
                expected=f"drop <= {limit:g} %",
                details={},
                metrics=[("health.model_accuracy_drop_pct", drop, "percent")],
            )
        )
    return out


def _pg_stat_statements(conn: Conn) -> tuple[list[tuple[Any, ...]], str | None]:
    """Rows of pg_stat_statements, or none and why not (not installed / not loaded / no rights)."""
    row = conn.execute(health_sql("has_pg_stat_statements")).fetchone()
    if row is None:
        return [], "pg_stat_statements is not installed in this database"
    try:
        with conn.transaction():  # a savepoint: an unusable view must not abort the probe
            return conn.execute(health_sql("query_stats_pgss")).fetchall(), None
    except (
        psycopg.errors.ObjectNotInPrerequisiteState,
        psycopg.errors.InsufficientPrivilege,
        psycopg.errors.UndefinedColumn,
    ) as exc:
        return [], f"pg_stat_statements is unusable: {' '.join(str(exc).split())}"


def query_response(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Mean execution time against baseline: pg_stat_statements when usable, else query logs."""
    limit = policy.query_slowdown_max_ratio
    baseline_window = timedelta(days=policy.query_baseline_days)
    pgss_rows, why_not = _pg_stat_statements(conn)
    compared, per_query = _compared_pgss(conn, pgss_rows, ctx, baseline_window)
    source = "pg_stat_statements"
    if pgss_rows and not compared:
        why_not = "pg_stat_statements has no baseline yet (recorded by this run for the next ones)"
    if not compared:
        source = "query_performance_logs"
        compared = _compared_logs(conn, policy, ctx, baseline_window)
    details: dict[str, Any] = {"source": source}
    if why_not:
        details["pg_stat_statements"] = why_not
    if not compared:
        details["reason"] = "neither pg_stat_statements nor query_performance_logs has comparable data"
        return [
            CheckResult(
                check_name=QUERY_RESPONSE,
                target="queries",
                status=SKIPPED,
                observed={"source": None},
                threshold=limit,
                expected=f"<= {limit:g} x baseline",
                details=details,
                metrics=[],
                resource_metrics=per_query,
            )
        ]
    return [_slowdown(compared, limit, details=details, per_query=per_query)]


def _compared_pgss(
    conn: Conn, pgss_rows: list[tuple[Any, ...]], ctx: Context, baseline_window: timedelta
) -> tuple[list[dict[str, Any]], list[tuple[str, str, float, str]]]:
    """The statements of pg_stat_statements that have a recorded baseline, and every statement's
    mean time (a per-query metric: the next runs' baseline)."""
    if not pgss_rows:
        return [], []
    ids = [f"queryid:{r[0]}" for r in pgss_rows]
    base: dict[str, float] = dict(
        conn.execute(
            health_sql("query_baseline_pgss"), {"now": ctx.now, "baseline": baseline_window, "ids": ids}
        ).fetchall()
    )
    compared: list[dict[str, Any]] = []
    per_query: list[tuple[str, str, float, str]] = []
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
    return compared, per_query


def _compared_logs(
    conn: Conn, policy: HealthPolicy, ctx: Context, baseline_window: timedelta
) -> list[dict[str, Any]]:
    """The query fingerprints of query_performance_logs that have a baseline."""
    rows = conn.execute(
        health_sql("query_logs"),
        {
            "now": ctx.now,
            "lookback": timedelta(minutes=policy.query_lookback_minutes),
            "baseline": baseline_window,
        },
    ).fetchall()
    return [
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


def _slowdown(
    compared: list[dict[str, Any]],
    limit: float,
    *,
    details: dict[str, Any],
    per_query: list[tuple[str, str, float, str]],
) -> CheckResult:
    """The worst slowdown against baseline (the five worst in the details)."""
    for c in compared:
        c["ratio"] = c["mean_ms"] / c["baseline_ms"]
    compared.sort(key=lambda c: (-c["ratio"], c["query"]))
    worst = compared[0]
    observed = {
        "max_ratio": worst["ratio"],
        "query": worst["query"],
        "queries_compared": len(compared),
        "over_threshold": sum(1 for c in compared if c["ratio"] > limit),
        "source": details["source"],
    }
    details["worst"] = compared[:5]
    return CheckResult(
        check_name=QUERY_RESPONSE,
        target="queries",
        status=over_limit(worst["ratio"], limit),
        observed=observed,
        threshold=limit,
        expected=f"<= {limit:g} x baseline",
        details=details,
        metrics=[("health.query_slowdown_ratio", worst["ratio"], "ratio")],
        resource_metrics=per_query,
    )


def quality_score(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Share of passing checks (passed or warning) among the latest window's quality results."""
    limit = policy.quality_score_min_pct
    name, target = "health.quality_score", "data_quality_checks"
    row = conn.execute(health_sql("quality_score"), {"now": ctx.now}).fetchone()
    if row is None or not row[2]:
        return [
            CheckResult(
                check_name=name,
                target=target,
                status=SKIPPED,
                threshold=limit,
                details={"reason": "no quality results yet"},
            )
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
            check_name=name,
            target=target,
            status=status,
            observed=observed,
            threshold=limit,
            expected=f">= {limit:g} %",
            details={},
            metrics=[("health.quality_score_pct", score, "percent")],
        )
    ]


def resource_utilization(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Latest resource_utilization sample per resource, and connections / max_connections."""
    limit = policy.resource_utilization_max_pct
    rows = conn.execute(
        health_sql("resource_utilization"),
        {"now": ctx.now, "lookback": timedelta(minutes=policy.lookback_minutes)},
    ).fetchall()
    return [_worst_resource(rows, limit, lookback_minutes=policy.lookback_minutes), _connections(conn, limit)]


def _worst_resource(rows: list[tuple[Any, ...]], limit: float, *, lookback_minutes: int) -> CheckResult:
    """The resource with the highest latest sample (the five highest in the details)."""
    if not rows:
        return CheckResult(
            check_name="health.resource_utilization",
            target="resource_utilization",
            status=SKIPPED,
            threshold=limit,
            details={"reason": f"no samples in the last {lookback_minutes} minutes"},
        )
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
    return CheckResult(
        check_name="health.resource_utilization",
        target="resource_utilization",
        status=over_limit(worst["pct"], limit),
        observed=observed,
        threshold=limit,
        expected=f"<= {limit:g} %",
        details={"worst": samples[:5]},
        metrics=[("health.resource_utilization_max_pct", worst["pct"], "percent")],
    )


def _connections(conn: Conn, limit: float) -> CheckResult:
    """Connections in use against max_connections."""
    row = conn.execute(health_sql("connections")).fetchone()
    assert row is not None
    used, max_conn, reserved = (int(v) for v in row)
    pct = 100.0 * used / max_conn
    return CheckResult(
        check_name="health.connection_utilization",
        target="connections",
        status=over_limit(pct, limit),
        observed={"pct": pct, "used": used, "max_connections": max_conn, "superuser_reserved": reserved},
        threshold=limit,
        expected=f"<= {limit:g} %",
        details={},
        metrics=[("health.connection_utilization_pct", pct, "percent")],
    )
