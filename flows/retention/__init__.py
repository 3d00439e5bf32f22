"""Retention: archive → detach → drop expired partitions; batched DELETE in plain tables.

Partitioned tables (policy ``[partitions.tables.*]`` with a ``retention``): a partition whose upper
bound is older than ``now - retention`` — never the current or a future one, never DEFAULT — is

- ``drop``: detached and dropped in one transaction (rows left in the parent's range after the
  detach must be 0, else it rolls back);
- ``keep``: detached and moved to the archive schema in one transaction; its rows are counted
  before and in the archive after;
- ``dump``: COPYed (text format) to a gzip file under ``dump_dir`` (a directory, a shared mount or
  an object store: ``s3://bucket/prefix``) with a JSON manifest (rows, sha256); the dump is re-read
  from the store and verified before anything is detached; after the detach the table is counted
  again and re-attached on any mismatch; only then dropped. Partial files carry the run that
  writes them (its operation id): no run removes another live run's.

Plain tables (``[retention.plain.*]``): batched DELETE, one transaction per batch, the batch's
selected and deleted counts compared before commit; the run stops at ``max_seconds``.
Every DDL step runs under ``lock_timeout`` with retries (``flows.ddl.run_locked``).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog
from prefect import flow
from prefect.client.schemas.objects import State

from flows.core import clock, lifecycle, locks, metrics, runtime, settings
from flows.core.archives.ownership import new_owner
from flows.core.archives.store import Store, policy_store
from flows.core.catalog import Target, resolve_targets
from flows.core.errors import raise_worst
from flows.core.forms import DryRun, TargetName
from flows.core.logs import get_logger
from flows.core.outcomes import Done, Outcome
from flows.core.partition_policy import RetentionPolicy
from flows.retention.partitioned import expire_partitions
from flows.retention.plain import PlainTarget, purge_plain, resolve_plain
from flows.retention.results import TableOutcome, measurements

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "retention"


def archive_store(policy: RetentionPolicy) -> Store:
    """Where dump mode writes (``[retention] dump_dir``, default ``<state dir>/archive``)."""
    return policy_store(policy.dump_dir, policy.storage, settings.load_settings().state_dir)


def retention_targets(conn: Conn, policy: settings.Policy) -> tuple[list[Target], list[PlainTarget]]:
    """Validate every table of both policies against the catalog (ConfigError, nothing changed)."""
    tables = {n: t for n, t in policy.partitions.enabled_tables().items() if t.retention is not None}
    return resolve_targets(conn, tables, what="retention"), resolve_plain(
        conn, policy.retention.enabled_plain()
    )


def run_once(
    conn: Conn, policy: settings.Policy, *, dry_run: bool = False, now: datetime | None = None
) -> list[TableOutcome] | None:
    """The whole job without Prefect (advisory lock, every table, metrics). None: another run holds it."""
    log = get_logger(job=JOB)
    parts, plain = retention_targets(conn, policy)
    with locks.job_lock(conn, JOB) as got:
        if not got:
            log.warning("another retention run holds the lock; exiting")
            return None
        now = now or clock.db_now(conn)
        rp = policy.retention
        store, owner = archive_store(rp), new_owner()
        out = [
            expire_partitions(conn, t, rp, now=now, dump_dir=store, dry_run=dry_run, log=log, owner=owner)
            for t in parts
        ]
        deadline = time.monotonic() + rp.max_seconds
        out += [
            purge_plain(conn, t, now=now, deadline=deadline, retry=rp, dry_run=dry_run, log=log)
            for t in plain
        ]
        if not dry_run:
            rows = [m for o in out for m in measurements(o)]
            metrics.record(conn, rows, measured_at=now, flow_run_id=None, operation_id=None)
    return out


def _record(outcome: TableOutcome, measured_at: datetime, operation_id: UUID) -> None:
    with runtime.connection() as conn:
        metrics.record(
            conn,
            measurements(outcome),
            measured_at=measured_at,
            flow_run_id=runtime.current_flow_run_id(),
            operation_id=operation_id,
        )


@runtime.db_task("retention-partitioned", JOB, retries=1)
def partitioned_task(table: str, measured_at: datetime, operation_id: UUID, dry_run: bool) -> dict[str, Any]:
    policy = settings.current_policy()
    log = get_logger(job=JOB)
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=runtime.current_flow_run_id()),
        runtime.connection() as conn,
    ):
        (target,) = resolve_targets(conn, {table: policy.partitions.tables[table]}, what="retention")
        outcome = expire_partitions(
            conn,
            target,
            policy.retention,
            now=measured_at,
            dump_dir=archive_store(policy.retention),
            dry_run=dry_run,
            log=log,
            owner=new_owner(operation_id),
        )
    if not dry_run:
        _record(outcome, measured_at, operation_id)
    return outcome.summary()


@runtime.db_task("retention-plain", JOB, retries=1)
def plain_task(
    table: str, measured_at: datetime, deadline_epoch: float, operation_id: UUID, dry_run: bool
) -> dict[str, Any]:
    policy = settings.current_policy()
    log = get_logger(job=JOB)
    deadline = time.monotonic() + max(0.0, deadline_epoch - time.time())
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=runtime.current_flow_run_id()),
        runtime.connection() as conn,
    ):
        (target,) = resolve_plain(conn, {table: policy.retention.plain[table]})
        outcome = purge_plain(
            conn, target, now=measured_at, deadline=deadline, retry=policy.retention, dry_run=dry_run, log=log
        )
    if not dry_run:
        _record(outcome, measured_at, operation_id)
    return outcome.summary()


def _validate() -> None:
    """Every policy table checked against the catalog before the lock or the ledger is touched."""
    with runtime.connection() as conn:
        retention_targets(conn, settings.current_policy())


def retention_run(run: lifecycle.Run, dry_run: bool) -> Outcome:
    """The job's work inside the lifecycle: the partitioned tables first, then the plain ones (one
    task run each group, runtime.run_each)."""
    policy = run.policy
    with runtime.connection() as conn:
        parts, plain = retention_targets(conn, policy)
    measured_at = run.started_at
    deadline_epoch = time.time() + policy.retention.max_seconds
    retries = policy.retention.task_retries
    names = [t.name for t in parts]
    results, failures = runtime.run_each(
        partitioned_task, JOB, names, measured_at, run.operation_id, dry_run, retries=retries
    )
    plain_results, plain_failures = runtime.run_each(
        plain_task,
        JOB,
        [p.name for p in plain],
        measured_at,
        deadline_epoch,
        run.operation_id,
        dry_run,
        retries=retries,
    )
    results.update(plain_results)
    failures.update(plain_failures)
    run.counts.update(
        {
            "dry_run": dry_run,
            "partitions_expired": sum(len(r["actions"]) for r in results.values()),
            "rows_removed": sum(r["rows_removed"] for r in results.values()),
            "bytes_removed": sum(r["bytes_removed"] for r in results.values()),
            "rows_archived": sum(r["rows_archived"] for r in results.values()),
            "bytes_archived": sum(r["bytes_archived"] for r in results.values()),
            "rows_remaining": sum(r["rows_remaining"] for r in results.values() if r["kind"] == "plain"),
            "failed_tables": sorted(failures),
        }
    )
    raise_worst(JOB, failures)
    get_logger(job=JOB).info(
        "retention done", **{k: v for k, v in run.counts.items() if k != "failed_tables"}
    )
    counts = run.counts
    message = f"{counts['partitions_expired']} partition(s) expired, {counts['rows_removed']} rows removed"
    result = {"operation_id": str(run.operation_id), **counts, "tables_detail": results}
    return Done(result=result, message=message)


@flow(name="retention", log_prints=False)
def retention_flow(dry_run: DryRun = False, target: TargetName | None = None) -> State[Any]:
    """Expire partitions per policy and batch-delete old rows of plain tables.

    Args:
        dry_run: Report what would change; change nothing.
        target: The database (a [targets] name of the policy file). Empty: every target.
    """
    return lifecycle.run_flow(
        JOB,
        lambda run: retention_run(run, dry_run),
        params={"dry_run": dry_run},
        validate=_validate,
        target=target,
    )
