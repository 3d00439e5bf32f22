"""The partitions job: every table in one step (a task run under Prefect) inside the engine's run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pydantic import Field

from flows.core import metrics
from flows.core.engine import Cron, Done, JobSpec, Outcome, Params, Phase, Plan, Planning, Replays, Run, step
from flows.core.engine.forms import DryRun
from flows.core.errors import raise_worst
from flows.core.logs import get_logger
from flows.core.partitioning.catalog import Target, resolve_targets
from flows.partitions.maintain import (
    JOB,
    Conn,
    Ready,
    TableResult,
    maintain_table,
    measurements,
    prepare,
    replay,
)
from flows.partitions.plan import observe_nowait


@dataclass(kw_only=True)
class Prepared:
    """What a run reads once for all its tables, as ``run_once`` does: the catalog, the DEFAULT
    counts (never waiting on a lock longer than ``lock_timeout``, once) and the shapes of the tables
    that get a partition. A table's entry is taken by its first try; a retry, or a table whose
    DEFAULT was busy, reads its own (under the DDL retry rule)."""

    tables: dict[str, Ready] = field(default_factory=dict)

    @classmethod
    def read(
        cls, conn: Conn, targets: list[Target], *, now: datetime, dry_run: bool, lock_timeout_ms: int
    ) -> Prepared:
        seen = observe_nowait(conn, targets, lock_timeout_ms)
        usable = {oid: o for oid, o in seen.items() if dry_run or not o.default_busy}
        ready = prepare(conn, targets, usable, now, dry_run=dry_run)
        return cls(tables={r.target.name: r for r in ready.values()})

    def take(self, table: str) -> Ready | None:
        return self.tables.pop(table, None)


@step("partitions-table")
def table_step(
    run: Run, table: str, measured_at: datetime, dry_run: bool, prepared: Prepared | None = None
) -> dict[str, Any]:
    """One table: from the run's prepared reads (its metrics are then recorded by the run, in one
    insert), or on its own, reading and recording everything itself."""
    policy = run.policy.partitions
    log = get_logger(job=JOB)
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=run.flow_run_id),
        run.connection() as conn,
    ):
        ready = prepared.take(table) if prepared is not None else None
        if ready is None:
            (target,) = resolve_targets(conn, {table: policy.tables[table]})
        else:
            target = ready.target
        result = maintain_table(
            conn,
            target,
            now=measured_at,
            retry=policy,
            dry_run=dry_run,
            log=log,
            ready=ready,
            check=run.check_lock,
            done_one=lambda _name, moved: run.add(partitions_created=1, rows_moved=moved),
        )
        if not dry_run and prepared is None:
            record(conn, [result], measured_at, run)
    return result.summary()


def record(conn: Conn, results: list[TableResult], measured_at: datetime, run: Run) -> None:
    rows = [m for r in results for m in measurements(r)]
    metrics.record(
        conn, rows, measured_at=measured_at, flow_run_id=run.flow_run_id, operation_id=run.operation_id
    )


def partitions_run(run: Run, dry_run: bool) -> Outcome:
    """The job's work: every table in one step run (``Step.each``)."""
    log = get_logger(job=JOB)
    policy = run.policy.partitions
    measured_at = run.started_at.replace(microsecond=0)
    with run.connection() as conn:
        targets = resolve_targets(conn, policy.enabled_tables())
        prepared = Prepared.read(
            conn, targets, now=measured_at, dry_run=dry_run, lock_timeout_ms=policy.lock_timeout_ms
        )
    results, failures = table_step.with_retries(policy.task_retries, 1.0).each(
        run, [t.name for t in targets], measured_at, dry_run, prepared
    )
    if results and not dry_run:  # every table's horizon and DEFAULT rows, one insert
        with run.connection() as conn:
            record(conn, [TableResult(**r) for r in results.values()], measured_at, run)
    # A real run counted each partition as it committed (``done_one``): a table that failed midway
    # (a lost lock) is in those counts, not in ``results``.
    done = {} if dry_run else run.counts
    counts: dict[str, Any] = {
        "dry_run": dry_run,
        "tables": len(targets),
        "partitions_created": done.get(
            "partitions_created", sum(len(r["created"]) for r in results.values())
        ),
        "rows_moved": done.get("rows_moved", sum(r["rows_moved"] for r in results.values())),
        "default_rows_left": sum(r["default_rows"] for r in results.values()),
        "failed_tables": sorted(failures),
    }
    busy = sorted(t for t, r in results.items() if r.get("default_busy"))
    if busy:
        counts["default_busy"] = busy
    run.record(**counts)
    changed = f"{counts['partitions_created']} partition(s) created, {counts['rows_moved']} rows moved"
    raise_worst(JOB, failures, done=changed if counts["partitions_created"] else None)
    log.info("partitions done", **{k: v for k, v in counts.items() if k != "failed_tables"})
    message = f"{counts['partitions_created']} partition(s) created, {counts['rows_moved']} rows moved"
    if busy:
        message += f"; DEFAULT locked by another session, rows not counted: {', '.join(busy)}"
    return Done(result={**counts, "tables_detail": results}, message=message)


class PartitionsParams(Params):
    dry_run: DryRun = Field(False, description="Report what would change; change nothing.")


def plan_run(planning: Planning, params: PartitionsParams) -> Plan:
    """Every policy table checked against the catalog (no lock taken) before the job lock or the
    ledger is touched."""
    resolve_targets(planning.conn, planning.policy.partitions.enabled_tables())
    return Plan(work=lambda run: partitions_run(run, params.dry_run), params={"dry_run": params.dry_run})


SPEC = JobSpec(
    name=JOB,
    description="Create missing partitions through the premake horizon and rescue DEFAULT rows.",
    params=PartitionsParams,
    plan=plan_run,
    schedule=Cron("5 0 * * *"),
    tags=("maintenance",),
    replay=Replays(replay, phase=Phase.BEFORE),
)
