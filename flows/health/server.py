"""Probes of the PostgreSQL server and the partitions"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from flows.core.policy.settings import HealthPolicy
from flows.health.checks import (
    FAILED,
    PASSED,
    SKIPPED,
    WARNING,
    CheckResult,
    Context,
    health_sql,
    over_limit,
)

Conn = psycopg.Connection[tuple[Any, ...]]


def sessions(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Long transactions, idle-in-transaction sessions and blocked lock waits of this database."""
    rows = conn.execute(health_sql("sessions")).fetchall()
    cols = ("pid", "state", "xact_seconds", "state_seconds", "waiting", "blockers", "query")
    sess = [dict(zip(cols, r, strict=True)) for r in rows]
    long_limit = policy.long_transaction_max_seconds
    idle_limit = policy.idle_in_transaction_max_seconds
    wait_limit = policy.lock_wait_max_seconds
    return [
        _sessions_over(
            "health.long_transactions",
            long_limit,
            [s for s in sess if (s["xact_seconds"] or 0.0) > long_limit],
            key="xact_seconds",
            metric="health.long_transactions",
        ),
        _sessions_over(
            "health.idle_in_transaction",
            idle_limit,
            [
                s
                for s in sess
                if str(s["state"]).startswith("idle in transaction")
                and (s["state_seconds"] or 0.0) > idle_limit
            ],
            key="state_seconds",
            metric="health.idle_in_transaction",
        ),
        _sessions_over(
            "health.lock_waits",
            wait_limit,
            [
                s
                for s in sess
                if s["waiting"] and s["blockers"] > 0 and (s["state_seconds"] or 0.0) > wait_limit
            ],
            key="state_seconds",
            metric="health.blocked_lock_waits",
        ),
    ]


def _sessions_over(
    check: str, limit: float, offenders: list[dict[str, Any]], *, key: str, metric: str
) -> CheckResult:
    """One session check: failed when any session is over ``limit`` seconds of ``key`` (the five
    longest in the details)."""
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
        check_name=check,
        target="pg_stat_activity",
        status=FAILED if offenders else PASSED,
        observed=observed,
        threshold=limit,
        expected=f"no session over {limit:g} s",
        details={"offenders": sample},
        metrics=[(metric, float(len(offenders)), "sessions")],
    )


def xid_age(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Transaction-ID age of the database and its oldest relation (wraparound protection)."""
    row = conn.execute(health_sql("xid_age")).fetchone()
    assert row is not None
    db_age, oldest, rel_age = int(row[0]), row[1], int(row[2] or 0)
    worst = max(db_age, rel_age)
    status = FAILED if worst >= policy.xid_age_max else WARNING if worst >= policy.xid_age_warning else PASSED
    observed = {"age": worst, "database_age": db_age, "oldest_relation": oldest, "relation_age": rel_age}
    return [
        CheckResult(
            check_name="health.xid_age",
            target="database",
            status=status,
            observed=observed,
            threshold=float(policy.xid_age_max),
            expected=f"< {policy.xid_age_warning} (warning), < {policy.xid_age_max} (failed)",
            details={},
            metrics=[("health.xid_age", float(worst), "xids")],
        )
    ]


def replication(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    limit = policy.replication_lag_max_seconds
    row = conn.execute(health_sql("replication"), {"max_lag": limit}).fetchone()
    assert row is not None
    in_recovery, replay_age, replicas, max_lag, lagging = row
    name, target = "health.replication_lag", "replicas"
    if in_recovery:
        details = {
            "reason": "this server is a replica; replication lag is probed on the primary",
            "replay_age_seconds": replay_age,
        }
        return [CheckResult(check_name=name, target=target, status=SKIPPED, threshold=limit, details=details)]
    if not replicas:
        return [
            CheckResult(
                check_name=name,
                target=target,
                status=SKIPPED,
                observed={"replicas": 0},
                threshold=limit,
                details={"reason": "no replicas"},
            )
        ]
    lag = float(max_lag or 0.0)
    observed = {"max_replay_lag_seconds": lag, "replicas": int(replicas), "lagging": lagging}
    return [
        CheckResult(
            check_name=name,
            target=target,
            status=over_limit(lag, limit),
            observed=observed,
            threshold=limit,
            expected=f"<= {limit:g} s",
            details={},
            metrics=[("health.replication_lag_seconds", lag, "seconds")],
        )
    ]


def default_partitions(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Rows in DEFAULT partitions (counted up to a cap, so the probe stays cheap).

    More than ``default_partition_max_rows``: a warning (the daily partitions run moves rows whose
    interval it can create). It fails, and pages, when more than ``default_partition_page_rows``
    are there, or when the DEFAULT partition has not been empty for more than
    ``default_partition_page_hours`` (by this probe's own history: rows the partitions run could
    not move, too old, beyond its horizon or without a key, or a partitions job that does not run).
    """
    limit, page_rows = policy.default_partition_max_rows, policy.default_partition_page_rows
    cap = max(policy.default_partition_count_cap, limit + 1, page_rows + 1)
    counted: list[tuple[str, str, int]] = []
    for parent, default in conn.execute(health_sql("default_partitions"), {"schema": ctx.schema}).fetchall():
        query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) s").format(
            sql.Identifier(ctx.schema, default)
        )
        row = conn.execute(query, (cap,)).fetchone()
        counted.append((parent, default, int(row[0]) if row else 0))
    holding = [parent for parent, _, rows in counted if rows > 0]
    since = _default_since(conn, holding, ctx.now) if holding else {}
    expected = (
        f"<= {limit} rows; pages above {page_rows} rows"
        f" or after {policy.default_partition_page_hours:g} h in DEFAULT"
    )
    out = []
    for parent, default, rows in counted:
        observed: dict[str, Any] = {"rows": rows, "capped": rows >= cap, "default_partition": default}
        status = PASSED
        if rows > 0:
            first = since.get(parent, ctx.now)
            hours = max(0.0, (ctx.now - first).total_seconds() / 3600)
            observed.update(since=first.isoformat(), hours=round(hours, 2))
            if rows > page_rows or hours > policy.default_partition_page_hours:
                status = FAILED
            elif rows > limit:
                status = WARNING
        out.append(
            CheckResult(
                check_name="health.default_partition_rows",
                target=parent,
                status=status,
                observed=observed,
                threshold=float(limit),
                expected=expected,
                details={},
                metrics=[("health.default_partition_rows", float(rows), "rows")],
            )
        )
    return out


def _default_since(conn: Conn, tables: list[str], now: datetime) -> dict[str, datetime]:
    """table -> the first health window of its DEFAULT partition's current run of windows with rows."""
    rows = conn.execute(health_sql("default_since"), {"tables": tables, "now": now}).fetchall()
    return {str(table): since for table, since in rows}


def partition_horizon(conn: Conn, policy: HealthPolicy, ctx: Context) -> list[CheckResult]:
    """Every partitioned table has contiguous partitions covering now + N intervals.

    The interval is the median width of the table's partitions; coverage runs from the partition
    holding ``now`` through every partition that starts where the previous one ends.
    """
    need = policy.partition_min_intervals_ahead
    parents = [
        r[0] for r in conn.execute(health_sql("partitioned_tables"), {"schema": ctx.schema}).fetchall()
    ]
    parts: dict[str, list[tuple[str, datetime | None, datetime | None]]] = {}
    for parent, part, lo, hi in conn.execute(health_sql("partitions"), {"schema": ctx.schema}).fetchall():
        parts.setdefault(parent, []).append((part, lo, hi))
    out = []
    for parent in parents:
        ranges = [(p, lo, hi) for p, lo, hi in parts.get(parent, []) if lo is not None and hi is not None]
        if not ranges:
            reason = "no partitions on a time range (not range-partitioned by time, or none created)"
            out.append(
                CheckResult(
                    check_name="health.partition_horizon",
                    target=parent,
                    status=SKIPPED,
                    threshold=need,
                    details={"reason": reason},
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
                check_name="health.partition_horizon",
                target=parent,
                status=FAILED if ahead < need else PASSED,
                observed=observed,
                threshold=need,
                expected=f">= {need:g} intervals ahead",
                details={},
                metrics=[("health.partition_intervals_ahead", ahead, "intervals")],
            )
        )
    return out
