"""Health checks as alert observations: which check, what it looked at, observed vs limit, and the
command to run next. ``flows.alerts.alerting`` decides whether that is a page, a resolve or nothing."""

from __future__ import annotations

from typing import Any

from flows.alerts.alerting import Observation
from flows.core.engine.outcomes import NOT_PASSED

# check -> the command to run next ("{subject}": what the check looked at)
NEXT: dict[str, str] = {
    "health.partition_horizon": "pgtender run partitions  # creates the future partitions of {subject}",
    "health.default_partition_rows": (
        "pgtender run partitions --dry-run  # which DEFAULT rows of {subject} it can move;"
        " then run it, and fix the rest (too old, beyond the horizon, no key) by hand"
    ),
    "health.job_watchdog": "pgtender run {subject}  # then read its last runs in the Prefect UI",
    "health.quality_score": "pgtender run quality  # then read the failing checks in Data Docs",
    "health.event_lag": "check the event ingestion pipeline; pgtender run health confirms the fix",
    "health.model_accuracy": "read the latest model_evaluations of {subject}; retrain or roll back",
    "health.query_response": "pgtender run views; then the slowest statements in pg_stat_statements",
    "health.resource_utilization": "look at system_performance_metrics for {subject}; add capacity",
    "health.connection_utilization": "SELECT * FROM pg_stat_activity  # who holds the connections",
    "health.long_transactions": "SELECT pid, xact_start, query FROM pg_stat_activity ORDER BY xact_start",
    "health.idle_in_transaction": "pg_terminate_backend(pid) the idle-in-transaction sessions",
    "health.lock_waits": "SELECT * FROM pg_locks WHERE NOT granted  # find the blocker",
    "health.xid_age": "VACUUM (FREEZE, VERBOSE) the oldest tables of {subject}",
    "health.replication": "check the replica and its network; SELECT * FROM pg_stat_replication",
    "health.cron_failures": "pgtender cron analyze",
}


def next_command(check: str, subject: str) -> str:
    template = NEXT.get(check, "see docs/runbook.md")
    return template.replace("{subject}", subject or "the database")


def _limit(row: dict[str, Any]) -> str | None:
    if row.get("expected"):
        return str(row["expected"])
    threshold = row.get("threshold")
    return None if threshold is None else f"{threshold:g}"


def observations(rows: list[dict[str, Any]]) -> list[Observation]:
    """One observation per health check row (``flows.health.summary_rows``)."""
    out = []
    for row in rows:
        failing = row["status"] in NOT_PASSED
        subject = str(row["target"] or "")
        note = f" ({row['note']})" if row.get("note") else ""
        out.append(
            Observation(
                check_name=row["check"],
                subject=subject,
                failing=failing,
                observed=row["observed"],
                limit=_limit(row),
                summary=(
                    f"{row['check']} on {subject} {row['status']}: observed {row['observed']},"
                    f" limit {_limit(row) or '-'}{note}"
                ),
                next_command=next_command(row["check"], subject) if failing else "",
            )
        )
    return out
