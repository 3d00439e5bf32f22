"""Retention: archive → detach → drop expired partitions; batched DELETE in plain tables.

Partitioned tables (policy ``[partitions.tables.*]`` with a ``retention``): a partition whose upper
bound is older than ``now - retention`` — never the current or a future one, never DEFAULT — is

- ``drop``: detached and dropped in one transaction (rows left in the parent's range after the
  detach must be 0, else it rolls back);
- ``keep``: detached and moved to the archive schema in one transaction; its rows are counted
  before and in the archive after;
- ``dump``: COPYed (text format) to a gzip file under ``dump_dir`` with a JSON manifest (rows,
  sha256); the file is re-read and verified before anything is detached; after the detach the
  table is counted again and re-attached on any mismatch; only then dropped.

Plain tables (``[retention.plain.*]``): batched DELETE, one transaction per batch, the batch's
selected and deleted counts compared before commit; the run stops at ``max_seconds``.
Every DDL step runs under ``lock_timeout`` with retries (``flows.ddl.run_locked``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import psycopg
import structlog
from prefect import flow, task
from psycopg import sql

from flows import locks, runtime, settings
from flows.core import clock
from flows.db import load_sql
from flows.ddl import RowCountMismatch, expect_equal, run_locked
from flows.errors import ConfigError, InfrastructureError, ProblemsFound
from flows.logs import get_logger
from flows.partition_policy import DdlRetry, PlainTablePolicy, RetentionPolicy
from flows.partitions import (
    KEY_TYPES,
    Target,
    db_now,
    floor_to,
    record_metrics,
    resolve_targets,
    subtract_age,
)

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "retention"
DUMP_FORMAT = "postgresql-copy-text+gzip"


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class Expired:
    name: str
    lo: datetime
    hi: datetime
    rows: int
    rows_exact: bool
    bytes: int


def _count(conn: Conn, table: sql.Composable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    return int(row[0]) if row else 0


def expired_partitions(conn: Conn, target: Target, *, now: datetime, exact: bool) -> list[Expired]:
    """Partitions wholly older than ``now - retention`` and older than the current interval."""
    policy = target.policy
    if policy.retention is None:
        return []
    cutoff = min(subtract_age(now, policy.retention), floor_to(now, policy.interval))
    out: list[Expired] = []
    rows = conn.execute(load_sql("queries/retention/children.sql"), {"oid": target.oid}).fetchall()
    for name, is_default, lo, hi, size, estimate in rows:
        if is_default or lo is None or hi is None or hi > cutoff:
            continue
        if exact or int(estimate) < 0:
            n, is_exact = _count(conn, sql.Identifier(target.schema, name)), True
        else:
            n, is_exact = int(estimate), False
        out.append(Expired(name, lo, hi, n, is_exact, int(size)))
    return sorted(out, key=lambda e: e.lo)


def _detach(c: Conn, target: Target, name: str) -> None:
    c.execute(
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
            target.ident, sql.Identifier(target.schema, name)
        )
    )


def _range_rows_in_parent(c: Conn, target: Target, exp: Expired) -> int:
    row = c.execute(
        sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
            t=target.ident, k=sql.Identifier(target.key), lo=target.bound(exp.lo), hi=target.bound(exp.hi)
        )
    ).fetchone()
    return int(row[0]) if row else 0


def drop_partitions(conn: Conn, target: Target, expired: list[Expired], *, retry: DdlRetry, log: Any) -> None:
    """DETACH + DROP every expired partition of one table in one transaction (one commit per table,
    a few milliseconds of ACCESS EXCLUSIVE on the parent); after the detaches the parent must show
    no rows of those ranges, else everything rolls back."""

    def work(c: Conn) -> None:
        for exp in expired:
            _detach(c, target, exp.name)
            left = _range_rows_in_parent(c, target, exp)
            expect_equal(f"rows of {exp.name}'s range still in {target.name}", 0, left)
        for exp in expired:
            c.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(target.schema, exp.name)))

    names = ", ".join(e.name for e in expired)
    run_locked(conn, work, retry=retry, what=f"drop {target.schema}.{{{names}}}", log=log)


def keep_partition(
    conn: Conn, target: Target, exp: Expired, *, archive_schema: str, retry: DdlRetry, log: Any
) -> str:
    """DETACH and move into the archive schema (one transaction); counts compared. Returns its name."""
    before = _count(conn, sql.Identifier(target.schema, exp.name))
    exists = conn.execute(
        load_sql("queries/partitions/relation_exists.sql"), {"schema": archive_schema, "name": exp.name}
    ).fetchone()
    if exists is not None:
        raise ProblemsFound(
            f"archive schema {archive_schema} already holds a table {exp.name}; nothing moved"
        )
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(archive_schema)))

    def work(c: Conn) -> None:
        _detach(c, target, exp.name)
        expect_equal(
            f"rows of {exp.name}'s range still in {target.name}", 0, _range_rows_in_parent(c, target, exp)
        )
        c.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(target.schema, exp.name), sql.Identifier(archive_schema)
            )
        )

    run_locked(conn, work, retry=retry, what=f"archive {target.schema}.{exp.name}", log=log)
    after = _count(conn, sql.Identifier(archive_schema, exp.name))
    if after < before:
        raise RowCountMismatch(
            f"{archive_schema}.{exp.name} holds {after} rows, {before} before the move (nothing was deleted)"
        )
    return f"{archive_schema}.{exp.name}"


def _columns(conn: Conn, schema: str, name: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        (sql.Identifier(schema, name).as_string(conn),),
    ).fetchall()
    return [r[0] for r in rows]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_dump(manifest_path: Path) -> dict[str, Any]:
    """Re-read a dump: its checksum and its row count must match the manifest. Returns the manifest."""
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    data = manifest_path.parent / manifest["file"]
    if _sha256(data) != manifest["sha256"]:
        raise RowCountMismatch(f"dump {data} does not match its checksum; nothing dropped")
    lines = 0
    with gzip.open(data, "rb") as fh:
        for _ in fh:
            lines += 1
    if lines != manifest["rows"]:
        raise RowCountMismatch(
            f"dump {data} holds {lines} rows, expected {manifest['rows']}; nothing dropped"
        )
    return manifest


def dump_partition(
    conn: Conn, target: Target, exp: Expired, *, dump_dir: Path, retry: DdlRetry, log: Any
) -> Path:
    """COPY the partition to ``<dump_dir>/<schema>.<partition>.<stamp>.copy.gz`` + manifest; verified."""
    dump_dir.mkdir(parents=True, exist_ok=True)
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    stem = f"{quote(target.schema, safe='')}.{quote(exp.name, safe='')}.{stamp}"
    data = dump_dir / f"{stem}.copy.gz"
    manifest_path = dump_dir / f"{stem}.json"
    table = sql.Identifier(target.schema, exp.name)
    columns = _columns(conn, target.schema, exp.name)
    partial = data.with_suffix(".partial")

    def work(c: Conn) -> int:
        # Writes into this (expired) partition wait; the parent and other partitions are untouched.
        c.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
        rows = _count(c, table)
        cols = sql.SQL(", ").join(sql.Identifier(col) for col in columns)
        with (
            gzip.open(partial, "wb", compresslevel=6) as out,
            c.cursor() as cur,
            cur.copy(sql.SQL("COPY {} ({}) TO STDOUT").format(table, cols)) as copy,
        ):
            for chunk in copy:
                out.write(chunk)
        return rows

    rows = run_locked(conn, work, retry=retry, what=f"dump {target.schema}.{exp.name}", log=log)
    partial.replace(data)
    manifest = {
        "format": DUMP_FORMAT,
        "file": data.name,
        "schema": target.schema,
        "parent": target.name,
        "partition": exp.name,
        "lower": exp.lo.isoformat(),
        "upper": exp.hi.isoformat(),
        "columns": columns,
        "rows": rows,
        "sha256": _sha256(data),
        "created_at": clock.now().isoformat(),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    verify_dump(manifest_path)
    return manifest_path


def drop_after_dump(
    conn: Conn, target: Target, exp: Expired, manifest: dict[str, Any], *, retry: DdlRetry, log: Any
) -> None:
    """Detach, recount against the dump (re-attach on mismatch), then drop."""
    table = sql.Identifier(target.schema, exp.name)

    def detach(c: Conn) -> None:
        _detach(c, target, exp.name)

    run_locked(conn, detach, retry=retry, what=f"detach {target.schema}.{exp.name}", log=log)
    now_rows = _count(conn, table)
    if now_rows != manifest["rows"]:

        def reattach(c: Conn) -> None:
            c.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    target.ident, table, target.bound(exp.lo), target.bound(exp.hi)
                )
            )

        run_locked(conn, reattach, retry=retry, what=f"re-attach {target.schema}.{exp.name}", log=log)
        raise RowCountMismatch(
            f"{exp.name} changed after its dump ({now_rows} rows, dump {manifest['rows']});"
            " re-attached, nothing dropped"
        )

    def drop(c: Conn) -> None:
        c.execute(sql.SQL("DROP TABLE {}").format(table))

    run_locked(conn, drop, retry=retry, what=f"drop {target.schema}.{exp.name}", log=log)


def restore_dump(conn: Conn, manifest_path: Path, *, schema: str, table: str) -> int:
    """Load a verified dump into an existing table with the same columns; returns rows loaded."""
    manifest = verify_dump(manifest_path)
    data = manifest_path.parent / manifest["file"]
    cols = sql.SQL(", ").join(sql.Identifier(col) for col in manifest["columns"])
    with conn.transaction(), conn.cursor() as cur:
        with (
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(schema, table), cols)) as copy,
            gzip.open(data, "rb") as fh,
        ):
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                copy.write(chunk)
        loaded = cur.rowcount
        expect_equal(f"restore of {data.name}", int(manifest["rows"]), loaded)
    return loaded


@dataclass
class PartitionAction:
    table: str
    partition: str
    lower: str
    upper: str
    mode: str
    rows: int
    rows_exact: bool
    bytes: int
    steps: list[str]
    archived_to: str | None = None


@dataclass
class TableOutcome:
    table: str
    schema: str
    kind: str  # partitioned | plain
    dry_run: bool
    actions: list[PartitionAction] = field(default_factory=list)
    rows_removed: int = 0
    bytes_removed: int = 0
    rows_archived: int = 0
    bytes_archived: int = 0
    rows_remaining: int = 0  # plain tables: expired rows left when the time budget ran out
    complete: bool = True

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def expire_partitions(
    conn: Conn,
    target: Target,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dump_dir: Path,
    dry_run: bool = False,
    log: Any = None,
) -> TableOutcome:
    """Archive per policy, detach and drop every expired partition of one table (oldest first)."""
    log = (log or get_logger(job=JOB)).bind(table=f"{target.schema}.{target.name}")
    mode = target.policy.archive
    exact = policy.exact_counts or dry_run or mode != "drop"
    outcome = TableOutcome(target.name, target.schema, "partitioned", dry_run)
    label = f"{target.schema}.{target.name}"
    found = run_locked(
        conn,
        lambda c: expired_partitions(c, target, now=now, exact=exact),
        retry=policy,
        what=f"inspect {label}",
        log=log,
    )
    for exp in found:
        steps = {
            "drop": ["detach", "drop"],
            "keep": ["detach", "archive"],
            "dump": ["dump", "detach", "drop"],
        }
        action = PartitionAction(
            target.name, exp.name, exp.lo.isoformat(), exp.hi.isoformat(), mode, exp.rows, exp.rows_exact,
            exp.bytes, steps[mode],
        )  # fmt: skip
        outcome.actions.append(action)
        if dry_run:
            log.info("would expire partition", partition=exp.name, mode=mode, rows=exp.rows, bytes=exp.bytes)
            continue
        if mode == "drop":
            continue  # all of this table's expired partitions at once, below
        if mode == "keep":
            action.archived_to = keep_partition(
                conn, target, exp, archive_schema=policy.archive_schema, retry=policy, log=log
            )
            outcome.rows_archived += exp.rows
            outcome.bytes_archived += exp.bytes
        else:
            manifest_path = dump_partition(conn, target, exp, dump_dir=dump_dir, retry=policy, log=log)
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            action.archived_to = str(manifest_path)
            action.rows = int(manifest["rows"])
            drop_after_dump(conn, target, exp, manifest, retry=policy, log=log)
            outcome.rows_archived += action.rows
            outcome.rows_removed += action.rows
            outcome.bytes_removed += exp.bytes
            outcome.bytes_archived += (manifest_path.parent / manifest["file"]).stat().st_size
        log.info(
            "partition expired",
            partition=exp.name,
            mode=mode,
            rows=action.rows,
            archived_to=action.archived_to,
        )
    if mode == "drop" and found and not dry_run:
        drop_partitions(conn, target, found, retry=policy, log=log)
        outcome.rows_removed = sum(e.rows for e in found)
        outcome.bytes_removed = sum(e.bytes for e in found)
        log.info("partitions dropped", partitions=[e.name for e in found], rows=outcome.rows_removed)
    return outcome


# --------------------------------------------------------------------------- plain tables


@dataclass(frozen=True)
class PlainTarget:
    schema: str
    name: str
    oid: int
    policy: PlainTablePolicy

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def resolve_plain(conn: Conn, tables: dict[str, PlainTablePolicy]) -> list[PlainTarget]:
    out: list[PlainTarget] = []
    for name, policy in tables.items():
        row = conn.execute(
            load_sql("queries/retention/plain_table.sql"),
            {"schema": policy.namespace, "table": name, "column": policy.column},
        ).fetchone()
        label = f"retention policy: table {policy.namespace}.{name}"
        if row is None:
            raise ConfigError(f"{label} does not exist")
        oid, relkind, column_type = row
        if relkind != "r":
            raise ConfigError(f"{label} is not a plain table (partitioned tables expire by partition)")
        if column_type is None:
            raise ConfigError(f"{label} has no column {policy.column}")
        if column_type not in KEY_TYPES:
            raise ConfigError(f"{label}: column {policy.column} is {column_type}, not a date/time")
        out.append(PlainTarget(policy.namespace, name, int(oid), policy))
    return out


def purge_plain(
    conn: Conn,
    target: PlainTarget,
    *,
    now: datetime,
    deadline: float,
    retry: DdlRetry,
    dry_run: bool = False,
    log: Any = None,
) -> TableOutcome:
    """Batched DELETE of rows older than the retention; one transaction per batch, until ``deadline``."""
    log = (log or get_logger(job=JOB)).bind(table=f"{target.schema}.{target.name}")
    cutoff = subtract_age(now, target.policy.retention)
    col = sql.Identifier(target.policy.column)
    expired_q = sql.SQL("SELECT count(*) FROM {t} WHERE {c} < {cut}").format(
        t=target.ident, c=col, cut=sql.Literal(cutoff)
    )
    row = conn.execute(expired_q).fetchone()
    before = int(row[0]) if row else 0
    outcome = TableOutcome(target.name, target.schema, "plain", dry_run, rows_remaining=before)
    if dry_run or before == 0:
        if dry_run:
            log.info("would delete rows", rows=before, older_than=cutoff.isoformat())
        outcome.rows_removed = before if dry_run else 0
        return outcome
    size = conn.execute(load_sql("queries/retention/table_size.sql"), {"oid": target.oid}).fetchone()
    assert size is not None
    table_bytes, estimated_rows = int(size[0]), int(size[1])
    if estimated_rows <= 0:  # never analyzed: count once (such tables are small)
        estimated_rows = _count(conn, target.ident)
    bytes_per_row = table_bytes / estimated_rows if estimated_rows > 0 else 0.0
    batch = sql.SQL(
        "WITH doomed AS (SELECT ctid FROM {t} WHERE {c} < {cut} LIMIT {n} FOR UPDATE SKIP LOCKED),"
        " gone AS (DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)) AND {c} < {cut}"
        " RETURNING 1)"
        " SELECT (SELECT count(*) FROM doomed), (SELECT count(*) FROM gone)"
    ).format(t=target.ident, c=col, cut=sql.Literal(cutoff), n=sql.Literal(target.policy.batch_size))

    def one_batch(c: Conn) -> int:
        r = c.execute(batch).fetchone()
        assert r is not None
        selected, deleted = int(r[0]), int(r[1])
        expect_equal(f"batch delete from {target.name}", selected, deleted)
        return deleted

    removed = 0
    while time.monotonic() < deadline:
        n = run_locked(conn, one_batch, retry=retry, what=f"delete batch from {target.name}", log=log)
        if n == 0:
            break
        removed += n
    row = conn.execute(expired_q).fetchone()
    after = int(row[0]) if row else 0
    outcome.rows_removed = removed
    outcome.bytes_removed = int(removed * bytes_per_row)
    outcome.rows_remaining = after
    outcome.complete = after == 0
    if after and time.monotonic() >= deadline:
        log.warning("time budget used up; expired rows remain", rows_removed=removed, rows_remaining=after)
    log.info("rows deleted", rows_removed=removed, rows_before=before, rows_after=after)
    return outcome


# --------------------------------------------------------------------------- metrics, plain run


def measurements(outcome: TableOutcome) -> list[dict[str, Any]]:
    resource = outcome.table if outcome.schema == "public" else f"{outcome.schema}.{outcome.table}"
    meta: dict[str, Any] = {"schema": outcome.schema, "kind": outcome.kind, "complete": outcome.complete}
    if outcome.kind == "plain":
        meta["bytes_estimated"] = True
    else:
        meta["rows_exact"] = all(a.rows_exact for a in outcome.actions)
        meta["partitions"] = [a.partition for a in outcome.actions]
    return [
        {
            "metric_name": name,
            "resource_type": "table",
            "resource_name": resource,
            "value": float(value),
            "unit": unit,
            "metadata": meta,
        }
        for name, value, unit in (
            ("retention_rows_removed", outcome.rows_removed, "rows"),
            ("retention_bytes_removed", outcome.bytes_removed, "bytes"),
            ("retention_rows_archived", outcome.rows_archived, "rows"),
            ("retention_bytes_archived", outcome.bytes_archived, "bytes"),
        )
    ]


def dump_dir_for(policy: RetentionPolicy) -> Path:
    if policy.dump_dir is not None:
        return policy.dump_dir
    return settings.load_settings().state_dir / "archive"


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
        now = now or db_now(conn)
        rp = policy.retention
        out = [
            expire_partitions(conn, t, rp, now=now, dump_dir=dump_dir_for(rp), dry_run=dry_run, log=log)
            for t in parts
        ]
        deadline = time.monotonic() + rp.max_seconds
        out += [
            purge_plain(conn, t, now=now, deadline=deadline, retry=rp, dry_run=dry_run, log=log)
            for t in plain
        ]
        if not dry_run:
            rows = [m for o in out for m in measurements(o)]
            record_metrics(conn, rows, measured_at=now, flow_run_id=None, operation_id=None)
    return out


# --------------------------------------------------------------------------- Prefect


_TASK_OPTS: dict[str, Any] = {
    "retries": 1,
    "retry_delay_seconds": [2, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": runtime.retry_transient_only,
    "tags": ["pgtender", "retention"],
}


def _record(outcome: TableOutcome, measured_at: datetime, operation_id: UUID) -> None:
    with runtime.connection() as conn:
        record_metrics(
            conn,
            measurements(outcome),
            measured_at=measured_at,
            flow_run_id=runtime.current_flow_run_id(),
            operation_id=operation_id,
        )


@task(name="retention-partitioned", **_TASK_OPTS)
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
            dump_dir=dump_dir_for(policy.retention),
            dry_run=dry_run,
            log=log,
        )
    if not dry_run:
        _record(outcome, measured_at, operation_id)
    return outcome.summary()


@task(name="retention-plain", **_TASK_OPTS)
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


def _failure(state: Any) -> BaseException:
    exc = state.result(raise_on_failure=False)
    return exc if isinstance(exc, BaseException) else InfrastructureError(str(exc))


@flow(name="retention", log_prints=False)
def retention_flow(dry_run: bool = False) -> dict[str, Any]:
    """Expire partitions per policy and batch-delete old rows of plain tables."""
    log = get_logger(job=JOB)
    policy = settings.current_policy()
    with runtime.connection() as conn:
        if (on_replica := runtime.replica_skip(JOB, conn)) is not None:
            return on_replica
        parts, plain = retention_targets(conn, policy)  # ConfigError before any change
        with locks.job_lock(conn, JOB) as got:
            if not got:
                reason = "another retention run holds the advisory lock"
                skipped = runtime.skip_run(conn, JOB, reason, params={"dry_run": dry_run})
                return {"skipped": reason, "operation_id": skipped["operation_id"]}
            measured_at = db_now(conn)
            deadline_epoch = time.time() + policy.retention.max_seconds
            retries = policy.retention.task_retries
            with runtime.ledger_entry(JOB, {"dry_run": dry_run}) as op:
                results: dict[str, dict[str, Any]] = {}
                failures: dict[str, BaseException] = {}
                for t in parts:
                    state = partitioned_task.with_options(name=f"retention-{t.name}", retries=retries)(
                        t.name, measured_at, op.operation_id, dry_run, return_state=True
                    )
                    if state.is_completed():
                        results[t.name] = state.result()
                    else:
                        failures[t.name] = _failure(state)
                for p in plain:
                    state = plain_task.with_options(name=f"retention-{p.name}", retries=retries)(
                        p.name, measured_at, deadline_epoch, op.operation_id, dry_run, return_state=True
                    )
                    if state.is_completed():
                        results[p.name] = state.result()
                    else:
                        failures[p.name] = _failure(state)
                op.counts.update(
                    {
                        "dry_run": dry_run,
                        "partitions_expired": sum(len(r["actions"]) for r in results.values()),
                        "rows_removed": sum(r["rows_removed"] for r in results.values()),
                        "bytes_removed": sum(r["bytes_removed"] for r in results.values()),
                        "rows_archived": sum(r["rows_archived"] for r in results.values()),
                        "bytes_archived": sum(r["bytes_archived"] for r in results.values()),
                        "rows_remaining": sum(
                            r["rows_remaining"] for r in results.values() if r["kind"] == "plain"
                        ),
                        "failed_tables": sorted(failures),
                    }
                )
                if failures:
                    detail = "; ".join(f"{t}: {e}" for t, e in failures.items())
                    if any(isinstance(e, ConfigError) for e in failures.values()):
                        raise ConfigError(f"{JOB} failed for {detail}")
                    if any(isinstance(e, ProblemsFound) for e in failures.values()):
                        raise ProblemsFound(f"{JOB} failed for {detail}")
                    raise InfrastructureError(f"{JOB} failed for {detail}")
    log.info("retention done", **{k: v for k, v in op.counts.items() if k != "failed_tables"})
    return {"operation_id": str(op.operation_id), **op.counts, "tables_detail": results}
