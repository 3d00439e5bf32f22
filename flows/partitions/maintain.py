"""One table brought to its premake horizon (or, dry-run, planned), and every table at once for a
backfill's replay (``maintain_all``: the backfill item holds the job's lock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
import psycopg.errors

from flows.core import clock, metrics
from flows.core.ddl import run_locked
from flows.core.engine import ReplayContext, Replayed
from flows.core.errors import PgtenderError
from flows.core.logs import get_logger
from flows.core.partitioning.catalog import Child, Target, horizon_days, resolve_targets
from flows.core.policy.partitions import DdlRetry, PartitionsPolicy
from flows.partitions.create import CONFLICTS, Shape, create_empty, empty_batches, read_shape, read_shapes
from flows.partitions.plan import Observed, Plan, Planned, observe, observe_nowait, plan_table
from flows.partitions.rescue import rescue_step

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "partitions"


def create_partitions(
    conn: Conn,
    target: Target,
    planned: list[Planned],
    *,
    retry: DdlRetry,
    log: Any,
    default_rows: int = 0,
    shape: Shape | None = None,
    check: Callable[[], None] = lambda: None,
    done_one: Callable[[str, int], None] = lambda name, moved: None,
) -> list[tuple[str, int]]:
    """Create the planned partitions of one table; returns (partition, rows moved out of DEFAULT).

    DEFAULT rows are rescued first, one interval per transaction (``rescue``), then the partitions
    with nothing to move are created (``create``). A rescue step that fails stops the rescue (the
    intervals before it stay committed, the rest in DEFAULT), the empty partitions are still
    created, and the failure is raised afterwards. A range another session covered is skipped.
    ``check`` runs before each transaction (the run still holds its lock), ``done_one`` after each
    partition committed (the run's ledger row counts it)."""
    if not planned:
        return []
    creator = _Creator(
        conn, target, shape or read_shape(conn, target), retry=retry, log=log, done_one=done_one
    )
    rescue = [p for p in planned if p.default_rows > 0 and target.default is not None]
    failure: PgtenderError | None = None
    for p in rescue:
        check()
        try:
            default_rows -= creator.rescue(p)
        except PgtenderError as exc:
            failure = exc
            break
    for batch in empty_batches([p for p in planned if p not in rescue], default_rows):
        check()
        creator.create(batch)
    if failure is not None:
        raise failure
    return creator.done


class _Creator:
    """One table's partitions, one transaction each (``run_locked``), counted as they commit."""

    def __init__(
        self,
        conn: Conn,
        target: Target,
        shape: Shape,
        *,
        retry: DdlRetry,
        log: Any,
        done_one: Callable[[str, int], None],
    ) -> None:
        self.conn, self.target, self.shape, self.retry, self.log = conn, target, shape, retry, log
        self.label = f"{target.schema}.{target.name}"
        self.done_one = done_one
        self.done: list[tuple[str, int]] = []

    def _committed(self, name: str, moved: int) -> None:
        self.done.append((name, moved))
        self.done_one(name, moved)

    def rescue(self, p: Planned) -> int:
        """Move ``p``'s rows out of DEFAULT into its new partition; the rows moved."""
        moved = run_locked(
            self.conn,
            lambda c: rescue_step(c, self.target, self.shape, p),
            retry=self.retry,
            what=f"rescue DEFAULT rows of {self.label} into {p.name}",
            log=self.log,
        )
        if moved is None:  # another session covered the range
            return 0
        self._committed(p.name, moved)
        return moved

    def _create_empty(self, batch: list[Planned], *, recheck: bool) -> list[str]:
        return run_locked(
            self.conn,
            lambda c: create_empty(c, self.target, self.shape, batch, recheck=recheck),
            retry=self.retry,
            what=f"create partitions of {self.label}",
            log=self.log,
        )

    def create(self, batch: list[Planned]) -> None:
        """Create a batch of partitions with nothing to move, in one transaction."""
        try:
            try:
                names = self._create_empty(batch, recheck=False)
            except CONFLICTS:  # another session created one of them first: look, then go on
                names = self._create_empty(batch, recheck=True)
        except psycopg.errors.CheckViolation:
            # Rows for one of these ranges reached DEFAULT after the plan: move them step by step.
            for p in batch:
                self.rescue(p)
            return
        for n in names:
            self._committed(n, 0)


@dataclass
class TableResult:
    table: str
    schema: str
    dry_run: bool
    created: list[str] = field(default_factory=list)
    rows_moved: int = 0
    default_rows: int = 0
    rows_too_old: int = 0
    rows_beyond_horizon: int = 0
    rows_null_key: int = 0
    rows_conflicting: int = 0
    conflicts: list[str] = field(default_factory=list)
    horizon_days: float = 0.0
    has_default: bool = True
    default_key_range: tuple[str | None, str | None] = (None, None)
    default_busy: bool = False  # dry-run only: DEFAULT was locked by another session, not counted

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def look(
    conn: Conn, targets: list[Target], *, retry: DdlRetry, dry_run: bool, log: Any
) -> dict[int, Observed]:
    """The tables' partitions and DEFAULT rows. The catalog read takes no lock; the DEFAULT counts
    wait behind a lock on DEFAULT: a dry-run reports it busy, a run retries it as transient."""
    if dry_run:
        return observe_nowait(conn, targets, retry.lock_timeout_ms)
    return run_locked(conn, lambda c: observe(c, targets), retry=retry, what="inspect tables", log=log)


def maintain_table(
    conn: Conn,
    target: Target,
    *,
    now: datetime,
    retry: DdlRetry,
    dry_run: bool = False,
    log: Any = None,
    ready: Ready | None = None,
    check: Callable[[], None] = lambda: None,
    done_one: Callable[[str, int], None] = lambda name, moved: None,
) -> TableResult:
    """Bring one table to its premake horizon and rescue its DEFAULT rows (or, dry-run, plan it).

    ``ready``: what the run already read and planned for this table (``prepare``); None: read it."""
    log = (log or get_logger(job=JOB)).bind(table=f"{target.schema}.{target.name}")
    if ready is None:
        observed = look(conn, [target], retry=retry, dry_run=dry_run, log=log)[target.oid]
        ready = Ready(target, observed, plan_table(target, observed.children, observed.buckets, now))
    observed, plan, shape = ready.observed, ready.plan, ready.shape
    result = TableResult(
        table=target.name,
        schema=target.schema,
        dry_run=dry_run,
        rows_too_old=plan.rows_too_old,
        rows_beyond_horizon=plan.rows_beyond_horizon,
        rows_null_key=plan.rows_null_key,
        rows_conflicting=plan.rows_conflicting,
        conflicts=plan.conflicts,
        has_default=target.default is not None,
        default_key_range=plan.default_key_range,
        default_busy=observed.default_busy,
    )
    if dry_run:
        return _planned_only(result, ready, now, log)
    created = create_partitions(
        conn,
        target,
        plan.create,
        retry=retry,
        log=log,
        default_rows=plan.default_rows,
        shape=shape,
        check=check,
        done_one=done_one,
    )
    _account(result, created, ready, now, conn=conn, retry=retry, log=log)
    return result


def _planned_only(result: TableResult, ready: Ready, now: datetime, log: Any) -> TableResult:
    """A dry run's result: what the plan would create and move, nothing changed."""
    plan = ready.plan
    if ready.observed.default_busy:
        log.warning("DEFAULT is locked by another session: its rows were not counted")
    result.created = [p.name for p in plan.create]
    result.rows_moved = sum(p.default_rows for p in plan.create)
    result.default_rows = plan.default_rows - result.rows_moved
    for p in plan.create:
        log.info("would create partition", partition=p.name, lo=p.lo.isoformat(), rows_to_move=p.default_rows)
    result.horizon_days = horizon_days(
        ready.observed.children + [Child(p.name, False, p.lo, p.hi) for p in plan.create], now
    )
    return result


def _account(
    result: TableResult,
    created: list[tuple[str, int]],
    ready: Ready,
    now: datetime,
    *,
    conn: Conn,
    retry: DdlRetry,
    log: Any,
) -> None:
    """What the creation did: partitions, rows moved, the rows DEFAULT still holds, the horizon."""
    target, plan, children = ready.target, ready.plan, ready.observed.children
    for name, moved in created:
        result.created.append(name)
        result.rows_moved += moved
        log.info("partition created", partition=name, rows_moved=moved)
    if result.rows_moved:  # DEFAULT changed: count it again
        again = look(conn, [target], retry=retry, dry_run=False, log=log)[target.oid]
        children = again.children
        result.default_rows = sum(again.buckets.values())
    else:  # only empty partitions: the plan's view plus what was created
        planned = {p.name: p for p in plan.create}
        children = children + [
            Child(n, False, planned[n].lo, planned[n].hi) for n in result.created if n in planned
        ]
        result.default_rows = plan.default_rows
    result.horizon_days = horizon_days(children, now)
    if result.default_rows:
        log.warning(
            "rows left in DEFAULT",
            rows=result.default_rows,
            too_old=plan.rows_too_old,
            beyond_horizon=plan.rows_beyond_horizon,
            null_key=plan.rows_null_key,
            conflicting=plan.rows_conflicting,
            key_range=plan.default_key_range,
        )
    if plan.conflicts:
        log.warning("ranges overlap existing partitions; not created", ranges=plan.conflicts)


def measurements(result: TableResult) -> list[metrics.Measurement]:
    """The capacity_planning_metrics rows of one table's result (the health probe reads the horizon)."""
    resource = result.table if result.schema == "public" else f"{result.schema}.{result.table}"
    meta = {"schema": result.schema, "premake_created": len(result.created)}
    out = [
        metrics.Measurement("partition_horizon_days", "table", resource, result.horizon_days, "days", meta)
    ]
    if result.has_default:
        out.append(
            metrics.Measurement(
                "default_partition_rows",
                "table",
                resource,
                float(result.default_rows),
                "rows",
                {
                    **meta,
                    "exact": True,
                    "rows_moved": result.rows_moved,
                    "too_old": result.rows_too_old,
                    "beyond_horizon": result.rows_beyond_horizon,
                    "null_key": result.rows_null_key,
                    "conflicting": result.rows_conflicting,
                    "key_range": list(result.default_key_range),
                },
            )
        )
    return out


@dataclass(frozen=True)
class Ready:
    """One table as the run read and planned it, and its shape when it gets a partition."""

    target: Target
    observed: Observed
    plan: Plan
    shape: Shape | None = None


def prepare(
    conn: Conn, targets: list[Target], seen: dict[int, Observed], now: datetime, *, dry_run: bool
) -> dict[int, Ready]:
    """Each observed table planned once, and the shapes of those that get a partition read in one
    query for the run (none for a dry-run)."""
    plans = {
        t.oid: plan_table(t, seen[t.oid].children, seen[t.oid].buckets, now) for t in targets if t.oid in seen
    }
    busy = [t for t in targets if t.oid in plans and plans[t.oid].create]
    shapes = read_shapes(conn, busy) if busy and not dry_run else {}
    return {t.oid: Ready(t, seen[t.oid], plans[t.oid], shapes.get(t.oid)) for t in targets if t.oid in plans}


def maintain_all(
    conn: Conn, policy: PartitionsPolicy, *, dry_run: bool = False, now: datetime | None = None
) -> list[TableResult]:
    """Every table of the policy, one after another on one connection, and their metrics: what a
    backfill's replay does (its item holds the job's lock)."""
    log = get_logger(job=JOB)
    targets = resolve_targets(conn, policy.enabled_tables())
    now = now or clock.db_now(conn)
    seen = look(conn, targets, retry=policy, dry_run=dry_run, log=log)
    ready = prepare(conn, targets, seen, now, dry_run=dry_run)
    results = [
        maintain_table(conn, t, now=now, retry=policy, dry_run=dry_run, log=log, ready=ready[t.oid])
        for t in targets
    ]
    if not dry_run:
        rows = [m for r in results for m in measurements(r)]
        metrics.record(conn, rows, measured_at=now, flow_run_id=None, operation_id=None)
    return results


def replay(conn: Conn, day: date | None, ctx: ReplayContext) -> Replayed:
    """Backfill: the whole job once before the days."""
    results = maintain_all(conn, ctx.policy.partitions)
    counts = {
        "partitions_created": sum(len(r.created) for r in results),
        "rows_moved": sum(r.rows_moved for r in results),
        "default_rows_left": sum(r.default_rows for r in results),
    }
    return Replayed(
        False, f"{counts['partitions_created']} created, {counts['rows_moved']} rows moved", counts
    )
