"""Partition maintenance: keep ``premake`` future partitions, rescue rows parked in DEFAULT.

Lock-safety (why it looks the way it does):
- A partition is created standalone (``CREATE TABLE … (LIKE parent INCLUDING ALL)``) and then
  ``ATTACH``ed: the parent only gets SHARE UPDATE EXCLUSIVE, which writers never wait on.
  ``CREATE TABLE … PARTITION OF`` would take ACCESS EXCLUSIVE on the parent.
- Every partition is one transaction under ``lock_timeout``, retried with backoff and jitter
  (``flows.ddl.run_locked``); a timed-out try rolls back completely.
- A pass with nothing to do reads the catalog and counts the DEFAULT partition: no lock a writer
  could wait on.
- DEFAULT rescue moves rows with one ``DELETE … RETURNING`` feeding an ``INSERT`` into the new
  (not yet attached) table, with counts before and after in the same transaction; any mismatch
  rolls the whole partition back. Rows outside the sensible window stay in DEFAULT and are
  reported, never dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import psycopg
import psycopg.errors
import structlog
from prefect import flow
from prefect.client.schemas.objects import State
from psycopg import sql

from flows.core import clock, lifecycle, locks, metrics, runtime, settings
from flows.core.catalog import Child, Target, horizon_days, read_children, resolve_targets
from flows.core.db import load_sql
from flows.core.ddl import expect_equal, run_locked
from flows.core.errors import raise_worst
from flows.core.forms import DryRun, TargetName
from flows.core.intervals import add_intervals, floor_to, partition_name, subtract_age
from flows.core.logs import get_logger
from flows.core.outcomes import Done, Outcome
from flows.core.partition_policy import DdlRetry, PartitionsPolicy
from flows.core.replay import ReplayContext, Replayed

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "partitions"
_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}


def _coverage(children: list[Child], lo: datetime, hi: datetime) -> str:
    """'free', 'covered' (fully, by existing partitions) or 'conflict' (partly, or unknown bounds)."""
    overlapping: list[tuple[datetime, datetime]] = []
    for child in children:
        if child.is_default:
            continue
        if child.lo is None or child.hi is None:
            return "conflict"  # MINVALUE/MAXVALUE or unreadable bounds: let nobody guess
        if child.lo < hi and lo < child.hi:
            overlapping.append((child.lo, child.hi))
    if not overlapping:
        return "free"
    cursor = lo
    for c_lo, c_hi in sorted(overlapping):
        if c_lo > cursor:
            return "conflict"
        cursor = max(cursor, c_hi)
    return "covered" if cursor >= hi else "conflict"


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Planned:
    name: str
    lo: datetime
    hi: datetime
    default_rows: int  # rows in DEFAULT that belong here (at planning time)


@dataclass
class Plan:
    create: list[Planned] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    default_rows: int = 0
    rows_too_old: int = 0
    rows_beyond_horizon: int = 0
    rows_null_key: int = 0
    rows_conflicting: int = 0
    default_key_range: tuple[str | None, str | None] = (None, None)


def _bucket_query(target: Target, tag: int) -> sql.Composed:
    assert target.default is not None
    key = sql.Identifier(target.key)
    if target.key_type == "timestamp with time zone":
        bucket = sql.SQL("date_trunc({unit}, {key} AT TIME ZONE 'UTC')")
    else:
        bucket = sql.SQL("date_trunc({unit}, {key}::timestamp)")
    return sql.SQL("SELECT {tag}::int AS t, {bucket} AS b, count(*) AS n FROM {default} GROUP BY 2").format(
        tag=sql.Literal(tag),
        bucket=bucket.format(unit=sql.Literal(target.policy.interval), key=key),
        default=sql.Identifier(target.schema, target.default),
    )


Buckets = dict[datetime | None, int]


def default_buckets_all(conn: Conn, targets: list[Target]) -> dict[int, Buckets]:
    """Exact row counts of every DEFAULT partition per interval bucket (None: NULL keys), one query."""
    out: dict[int, Buckets] = {t.oid: {} for t in targets}
    parts = [_bucket_query(t, i) for i, t in enumerate(targets) if t.default is not None]
    if not parts:
        return out
    for tag, b, n in conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall():
        out[targets[tag].oid][None if b is None else b.replace(tzinfo=UTC)] = int(n)
    return out


def default_buckets(conn: Conn, target: Target) -> Buckets:
    return default_buckets_all(conn, [target])[target.oid]


def observe(conn: Conn, targets: list[Target]) -> dict[int, tuple[list[Child], Buckets]]:
    """Partitions and DEFAULT buckets of every target: two statements, whatever the table count."""
    children = read_children(conn, [t.oid for t in targets])
    buckets = default_buckets_all(conn, targets)
    return {t.oid: (children.get(t.oid, []), buckets[t.oid]) for t in targets}


def plan_table(
    target: Target, children: list[Child], buckets: dict[datetime | None, int], now: datetime
) -> Plan:
    """Partitions to create: the current interval through premake, plus rescuable DEFAULT buckets."""
    policy = target.policy
    current = floor_to(now, policy.interval)
    horizon_end = add_intervals(current, policy.interval, policy.premake + 1)
    past_limit = floor_to(subtract_age(now, policy.retention or policy.rescue_max_age), policy.interval)
    plan = Plan(default_rows=sum(buckets.values()))
    keyed = [b for b in buckets if b is not None]
    if keyed:
        plan.default_key_range = (min(keyed).isoformat(), max(keyed).isoformat())
    wanted: dict[datetime, int] = {
        add_intervals(current, policy.interval, k): 0 for k in range(policy.premake + 1)
    }
    for bucket, n in buckets.items():
        if bucket is None:
            plan.rows_null_key += n
        elif bucket < past_limit:
            plan.rows_too_old += n
        elif bucket >= horizon_end:
            plan.rows_beyond_horizon += n
        else:
            wanted[bucket] = wanted.get(bucket, 0) + n
    for lo in sorted(wanted):
        hi = add_intervals(lo, policy.interval, 1)
        state = _coverage(children, lo, hi)
        if state == "free":
            plan.create.append(Planned(partition_name(target.name, lo), lo, hi, wanted[lo]))
        elif state == "conflict":
            plan.conflicts.append(f"{lo.date()}..{hi.date()}")
            plan.rows_conflicting += wanted[lo]
    return plan


# --------------------------------------------------------------------------- doing


def _grants_like_parent(conn: Conn, target: Target) -> list[tuple[sql.Composable, str | None, bool]]:
    """The parent's explicit privileges as (privilege list, grantee or None for PUBLIC, grantable)."""
    rows = conn.execute(load_sql("queries/partitions/parent_acl.sql"), {"oid": target.oid}).fetchall()
    grouped: dict[tuple[str | None, bool], list[str]] = {}
    for grantee, privilege, grantable in rows:
        if privilege in _PRIVILEGES:
            grouped.setdefault((grantee, bool(grantable)), []).append(privilege)
    return [
        (sql.SQL(", ").join(sql.SQL(p) for p in sorted(privs)), grantee, grantable)
        for (grantee, grantable), privs in grouped.items()
    ]


def _columns(conn: Conn, target: Target) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::oid AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (target.oid,),
    ).fetchall()
    return [r[0] for r in rows]


def _count_range(conn: Conn, table: sql.Composable, key: str, lo: sql.Composable, hi: sql.Composable) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
            t=table, k=sql.Identifier(key), lo=lo, hi=hi
        )
    ).fetchone()
    return int(row[0]) if row else 0


def create_partitions(
    conn: Conn, target: Target, planned: list[Planned], *, retry: DdlRetry, log: Any
) -> list[tuple[str, int]]:
    """Create, fill from DEFAULT and attach the planned partitions of one table: one transaction.

    Returns (partition, rows moved out of DEFAULT) for each partition created; a range another
    session covered meanwhile is skipped. Locks: SHARE UPDATE EXCLUSIVE on the parent (writers do
    not wait on it; it serialises maintainers), EXCLUSIVE on DEFAULT (readers go on; only rows bound
    for DEFAULT wait), then ATTACH's brief ACCESS EXCLUSIVE on DEFAULT and the new table.
    """
    if not planned:
        return []

    def work(c: Conn) -> list[tuple[str, int]]:
        c.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(target.ident))
        default = None if target.default is None else sql.Identifier(target.schema, target.default)
        if default is not None:
            c.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(default))
        # Re-read under the locks: DEFAULT can no longer change, and no other maintainer is here.
        children, buckets = observe(c, [target])[target.oid]
        grants = _grants_like_parent(c, target)
        columns: sql.Composable | None = None
        done: list[tuple[str, int]] = []
        for p in planned:
            if _coverage(children, p.lo, p.hi) != "free":
                continue
            new = sql.Identifier(target.schema, p.name)
            lo, hi = target.bound(p.lo), target.bound(p.hi)
            # Identity stays the parent's (as with PARTITION OF): a copied one would be a 2nd sequence.
            ddl: list[sql.Composable] = [
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING IDENTITY)").format(
                    new, target.ident
                )
            ]
            if target.me != target.owner:
                ddl.append(sql.SQL("ALTER TABLE {} OWNER TO {}").format(new, sql.Identifier(target.owner)))
            for privs, grantee, grantable in grants:
                ddl.append(
                    sql.SQL("GRANT {} ON {} TO {}{}").format(
                        privs,
                        new,
                        sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                        sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                    )
                )
            attach = sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                target.ident, new, lo, hi
            )
            expected = buckets.get(p.lo, 0)
            if default is None or expected == 0:
                c.execute(sql.SQL("; ").join([*ddl, attach]))  # one round trip
                done.append((p.name, 0))
            else:
                c.execute(sql.SQL("; ").join(ddl))
                if columns is None:
                    columns = sql.SQL(", ").join(sql.Identifier(col) for col in _columns(c, target))
                cur = c.execute(
                    sql.SQL(
                        "WITH moved AS (DELETE FROM {d} WHERE {k} >= {lo} AND {k} < {hi} RETURNING {cols})"
                        " INSERT INTO {new} ({cols}) SELECT {cols} FROM moved"
                    ).format(d=default, k=sql.Identifier(target.key), lo=lo, hi=hi, cols=columns, new=new)
                )
                what = f"moving {target.name} DEFAULT rows into {p.name}"
                expect_equal(f"{what} (inserted)", expected, cur.rowcount)
                expect_equal(f"{what} (left in DEFAULT)", 0, _count_range(c, default, target.key, lo, hi))
                row = c.execute(sql.SQL("SELECT count(*) FROM {}").format(new)).fetchone()
                expect_equal(f"{what} (in new partition)", expected, int(row[0]) if row else -1)
                c.execute(attach)
                done.append((p.name, expected))
            children.append(Child(p.name, False, p.lo, p.hi))
        return done

    return run_locked(
        conn, work, retry=retry, what=f"create partitions of {target.schema}.{target.name}", log=log
    )


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

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def maintain_table(
    conn: Conn,
    target: Target,
    *,
    now: datetime,
    retry: DdlRetry,
    dry_run: bool = False,
    log: Any = None,
    observed: tuple[list[Child], Buckets] | None = None,
) -> TableResult:
    """Bring one table to its premake horizon and rescue its DEFAULT rows (or, dry-run, plan it)."""
    log = (log or get_logger(job=JOB)).bind(table=f"{target.schema}.{target.name}")
    label = f"{target.schema}.{target.name}"

    def look(c: Conn) -> tuple[list[Child], Buckets]:
        # Catalog and DEFAULT reads wait for locks too (e.g. behind somebody's ALTER TABLE).
        return observe(c, [target])[target.oid]

    if observed is None:
        observed = run_locked(conn, look, retry=retry, what=f"inspect {label}", log=log)
    children, buckets = observed
    plan = plan_table(target, children, buckets, now)
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
    )
    if dry_run:
        result.created = [p.name for p in plan.create]
        result.rows_moved = sum(p.default_rows for p in plan.create)
        result.default_rows = plan.default_rows - result.rows_moved
        for p in plan.create:
            log.info(
                "would create partition", partition=p.name, lo=p.lo.isoformat(), rows_to_move=p.default_rows
            )
        result.horizon_days = horizon_days(
            children + [Child(p.name, False, p.lo, p.hi) for p in plan.create], now
        )
        return result
    for name, moved in create_partitions(conn, target, plan.create, retry=retry, log=log):
        result.created.append(name)
        result.rows_moved += moved
        log.info("partition created", partition=name, rows_moved=moved)
    if result.created:
        children, buckets = run_locked(conn, look, retry=retry, what=f"inspect {label}", log=log)
        result.default_rows = sum(buckets.values())
    else:
        result.default_rows = plan.default_rows
    result.horizon_days = horizon_days(children, now)
    left = result.default_rows
    if left:
        log.warning(
            "rows left in DEFAULT",
            rows=left,
            too_old=plan.rows_too_old,
            beyond_horizon=plan.rows_beyond_horizon,
            null_key=plan.rows_null_key,
            conflicting=plan.rows_conflicting,
            key_range=plan.default_key_range,
        )
    if plan.conflicts:
        log.warning("ranges overlap existing partitions; not created", ranges=plan.conflicts)
    return result


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


def run_once(
    conn: Conn, policy: PartitionsPolicy, *, dry_run: bool = False, now: datetime | None = None
) -> list[TableResult] | None:
    """The whole job without Prefect: advisory lock, every table, metrics. None: another run holds it."""
    log = get_logger(job=JOB)
    targets = resolve_targets(conn, policy.enabled_tables())
    with locks.job_lock(conn, JOB) as got:
        if not got:
            log.warning("another partitions run holds the lock; exiting")
            return None
        now = now or clock.db_now(conn)
        seen = run_locked(conn, lambda c: observe(c, targets), retry=policy, what="inspect tables", log=log)
        results = [
            maintain_table(conn, t, now=now, retry=policy, dry_run=dry_run, log=log, observed=seen[t.oid])
            for t in targets
        ]
        if not dry_run:
            rows = [m for r in results for m in measurements(r)]
            metrics.record(conn, rows, measured_at=now, flow_run_id=None, operation_id=None)
    return results


def replay(conn: Conn, day: date | None, ctx: ReplayContext) -> Replayed | None:
    """Backfill: the whole job once before the days (None: a scheduled run holds its lock)."""
    results = run_once(conn, ctx.policy.partitions)
    if results is None:
        return None
    counts = {
        "partitions_created": sum(len(r.created) for r in results),
        "rows_moved": sum(r.rows_moved for r in results),
        "default_rows_left": sum(r.default_rows for r in results),
    }
    return Replayed(
        False, f"{counts['partitions_created']} created, {counts['rows_moved']} rows moved", counts
    )


# --------------------------------------------------------------------------- Prefect


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
    """Every policy table checked against the catalog before the lock or the ledger is touched."""
    with runtime.connection() as conn:
        resolve_targets(conn, settings.current_policy().partitions.enabled_tables())


def partitions_run(run: lifecycle.Run, dry_run: bool) -> Outcome:
    """The job's work inside the lifecycle: every table in one task run (runtime.run_each)."""
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
    raise_worst(JOB, failures)
    log.info("partitions done", **{k: v for k, v in run.counts.items() if k != "failed_tables"})
    counts = run.counts
    message = f"{counts['partitions_created']} partition(s) created, {counts['rows_moved']} rows moved"
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
