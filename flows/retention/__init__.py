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
from pathlib import Path
from typing import Any

import psycopg
import structlog
from pydantic import Field

from flows.core import clock, metrics
from flows.core.archives.ownership import new_owner
from flows.core.archives.store import Store, policy_store
from flows.core.engine import Cron, Done, JobSpec, Outcome, Params, Plan, Planning, Run, step
from flows.core.engine.forms import DryRun
from flows.core.errors import raise_worst
from flows.core.logs import get_logger
from flows.core.partitioning.catalog import Target, resolve_targets
from flows.core.policy import settings
from flows.core.policy.partitions import RetentionPolicy
from flows.retention.partitioned import expire_partitions
from flows.retention.plain import PlainTarget, purge_plain, resolve_plain
from flows.retention.results import TableOutcome, measurements

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "retention"


def archive_store(policy: RetentionPolicy, state_dir: Path) -> Store:
    """Where dump mode writes (``[retention] dump_dir``, default the target's ``<state dir>/archive``)."""
    return policy_store(policy.dump_dir, policy.storage, state_dir)


def retention_targets(conn: Conn, policy: settings.Policy) -> tuple[list[Target], list[PlainTarget]]:
    """Validate every table of both policies against the catalog (ConfigError, nothing changed)."""
    tables = {n: t for n, t in policy.partitions.enabled_tables().items() if t.retention is not None}
    return resolve_targets(conn, tables, what="retention"), resolve_plain(
        conn, policy.retention.enabled_plain()
    )


def expire_all(
    conn: Conn,
    policy: settings.Policy,
    *,
    state_dir: Path,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[TableOutcome]:
    """Every table of the policy, one after another on one connection, and their metrics (the
    job's work in one call: what the benchmarks and the table-level tests use; no lock, no ledger)."""
    log = get_logger(job=JOB)
    parts, plain = retention_targets(conn, policy)
    now = now or clock.db_now(conn)
    rp = policy.retention
    store, owner = archive_store(rp, state_dir), new_owner()
    out = [
        expire_partitions(conn, t, rp, now=now, dump_dir=store, dry_run=dry_run, log=log, owner=owner)
        for t in parts
    ]
    deadline = time.monotonic() + rp.max_seconds
    out += [
        purge_plain(conn, t, now=now, deadline=deadline, retry=rp, dry_run=dry_run, log=log) for t in plain
    ]
    if not dry_run:
        rows = [m for o in out for m in measurements(o)]
        metrics.record(conn, rows, measured_at=now, flow_run_id=None, operation_id=None)
    return out


def _record(run: Run, outcome: TableOutcome, measured_at: datetime) -> None:
    with run.connection() as conn:
        metrics.record(
            conn,
            measurements(outcome),
            measured_at=measured_at,
            flow_run_id=run.flow_run_id,
            operation_id=run.operation_id,
        )


def _progress(run: Run, step_name: str) -> None:
    """After each step of a dump: the run still holds its lock (else it stops here)."""
    run.check_lock()


@step("retention-partitioned")
def partitioned_step(run: Run, table: str, measured_at: datetime, dry_run: bool) -> dict[str, Any]:
    policy = run.policy
    log = get_logger(job=JOB)
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=run.flow_run_id),
        run.connection() as conn,
    ):
        (target,) = resolve_targets(conn, {table: policy.partitions.tables[table]}, what="retention")
        outcome = expire_partitions(
            conn,
            target,
            policy.retention,
            now=measured_at,
            dump_dir=archive_store(policy.retention, run.state_dir),
            dry_run=dry_run,
            log=log,
            owner=new_owner(run.operation_id),
            on_step=lambda name: _progress(run, name),
            on_expired=lambda rows, nbytes: run.add(
                partitions_expired=1, rows_removed=rows, bytes_removed=nbytes
            ),
        )
    if not dry_run:
        _record(run, outcome, measured_at)
    return outcome.summary()


@step("retention-plain")
def plain_step(
    run: Run, table: str, measured_at: datetime, deadline_epoch: float, dry_run: bool
) -> dict[str, Any]:
    policy = run.policy
    log = get_logger(job=JOB)
    deadline = time.monotonic() + max(0.0, deadline_epoch - time.time())
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=run.flow_run_id),
        run.connection() as conn,
    ):
        (target,) = resolve_plain(conn, {table: policy.retention.plain[table]})
        outcome = purge_plain(
            conn, target, now=measured_at, deadline=deadline, retry=policy.retention, dry_run=dry_run, log=log
        )
    if not dry_run:
        _record(run, outcome, measured_at)
        run.add(rows_removed=outcome.rows_removed)
    return outcome.summary()


def retention_run(run: Run, dry_run: bool) -> Outcome:
    """The job's work: the partitioned tables first, then the plain ones (one step run each group)."""
    policy = run.policy
    with run.connection() as conn:
        parts, plain = retention_targets(conn, policy)
    measured_at = run.started_at
    deadline_epoch = time.time() + policy.retention.max_seconds
    retries = policy.retention.task_retries
    results, failures = partitioned_step.with_retries(retries, 1.0).each(
        run, [t.name for t in parts], measured_at, dry_run
    )
    plain_results, plain_failures = plain_step.with_retries(retries, 1.0).each(
        run, [p.name for p in plain], measured_at, deadline_epoch, dry_run
    )
    results.update(plain_results)
    failures.update(plain_failures)
    counts: dict[str, Any] = {
        "dry_run": dry_run,
        "partitions_expired": sum(len(r["actions"]) for r in results.values()),
        "rows_removed": sum(r["rows_removed"] for r in results.values()),
        "bytes_removed": sum(r["bytes_removed"] for r in results.values()),
        "rows_archived": sum(r["rows_archived"] for r in results.values()),
        "bytes_archived": sum(r["bytes_archived"] for r in results.values()),
        "rows_remaining": sum(r["rows_remaining"] for r in results.values() if r["kind"] == "plain"),
        "failed_tables": sorted(failures),
    }
    run.record(**counts)
    raise_worst(JOB, failures)
    get_logger(job=JOB).info("retention done", **{k: v for k, v in counts.items() if k != "failed_tables"})
    message = f"{counts['partitions_expired']} partition(s) expired, {counts['rows_removed']} rows removed"
    return Done(result={**counts, "tables_detail": results}, message=message)


class RetentionParams(Params):
    dry_run: DryRun = Field(False, description="Report what would change; change nothing.")


def plan_run(planning: Planning, params: RetentionParams) -> Plan:
    """Every policy table checked against the catalog before the lock or the ledger is touched."""
    retention_targets(planning.conn, planning.policy)
    return Plan(work=lambda run: retention_run(run, params.dry_run), params={"dry_run": params.dry_run})


SPEC = JobSpec(
    name=JOB,
    description="Expire partitions per policy and batch-delete old rows of plain tables.",
    params=RetentionParams,
    plan=plan_run,
    schedule=Cron("0 3 * * 0"),
    tags=("maintenance",),
)
