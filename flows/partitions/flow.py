"""The partitions job as a Prefect flow: one task per table inside the run lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from prefect import flow
from prefect.client.schemas.objects import State

from flows.core import lifecycle, metrics, runtime, settings
from flows.core.catalog import resolve_targets
from flows.core.errors import raise_worst
from flows.core.forms import DryRun, TargetName
from flows.core.logs import get_logger
from flows.core.outcomes import Done, Outcome
from flows.partitions.maintain import JOB, maintain_table, measurements


@runtime.db_task("partitions-table", "partitions", retries=1)
def table_task(table: str, measured_at: datetime, operation_id: UUID, dry_run: bool) -> dict[str, Any]:
    policy = settings.current_policy().partitions
    log = get_logger(job=JOB)
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=runtime.current_flow_run_id()),
        runtime.connection() as conn,
    ):
        (target,) = resolve_targets(conn, {table: policy.tables[table]})
        result = maintain_table(conn, target, now=measured_at, retry=policy, dry_run=dry_run, log=log)
        if not dry_run:
            metrics.record(
                conn,
                measurements(result),
                measured_at=measured_at,
                flow_run_id=runtime.current_flow_run_id(),
                operation_id=operation_id,
            )
    return result.summary()


def _validate() -> None:
    """Every policy table checked against the catalog (no lock taken) before the job lock or the
    ledger is touched."""
    with runtime.connection() as conn:
        resolve_targets(conn, settings.current_policy().partitions.enabled_tables())


def partitions_run(run: lifecycle.Run, dry_run: bool) -> Outcome:
    """The job's work inside the lifecycle: one task per table."""
    log = get_logger(job=JOB)
    policy = run.policy.partitions
    with runtime.connection() as conn:
        targets = resolve_targets(conn, policy.enabled_tables())
    measured_at = run.started_at.replace(microsecond=0)
    results, failures = runtime.run_each(
        table_task,
        JOB,
        [t.name for t in targets],
        measured_at,
        run.operation_id,
        dry_run,
        retries=policy.task_retries,
    )
    run.counts.update(
        {
            "dry_run": dry_run,
            "tables": len(targets),
            "partitions_created": sum(len(r["created"]) for r in results.values()),
            "rows_moved": sum(r["rows_moved"] for r in results.values()),
            "default_rows_left": sum(r["default_rows"] for r in results.values()),
            "failed_tables": sorted(failures),
        }
    )
    busy = sorted(t for t, r in results.items() if r.get("default_busy"))
    if busy:
        run.counts["default_busy"] = busy
    raise_worst(JOB, failures)
    log.info("partitions done", **{k: v for k, v in run.counts.items() if k != "failed_tables"})
    counts = run.counts
    message = f"{counts['partitions_created']} partition(s) created, {counts['rows_moved']} rows moved"
    if busy:
        message += f"; DEFAULT locked by another session, rows not counted: {', '.join(busy)}"
    return Done(
        result={"operation_id": str(run.operation_id), **counts, "tables_detail": results}, message=message
    )


@flow(name="partitions", log_prints=False)
def partitions_flow(dry_run: DryRun = False, target: TargetName | None = None) -> State[Any]:
    """Create missing partitions through the premake horizon and rescue DEFAULT rows.

    Args:
        dry_run: Report what would change; change nothing.
        target: The database (a [targets] name of the policy file). Empty: every target.
    """
    return lifecycle.run_flow(
        JOB,
        lambda run: partitions_run(run, dry_run),
        params={"dry_run": dry_run},
        validate=_validate,
        target=target,
    )
