"""Plain tables"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from flows.core.db import load_sql
from flows.core.ddl import expect_equal, run_locked
from flows.core.errors import ConfigError
from flows.core.logs import get_logger
from flows.core.partitioning.catalog import KEY_TYPES
from flows.core.partitioning.intervals import subtract_age
from flows.core.policy.partitions import DdlRetry, PlainTablePolicy
from flows.retention.expired import count_rows
from flows.retention.results import TableOutcome

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "retention"


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
    outcome = TableOutcome(
        table=target.name, schema=target.schema, kind="plain", dry_run=dry_run, rows_remaining=before
    )
    if dry_run or before == 0:
        if dry_run:
            log.info("would delete rows", rows=before, older_than=cutoff.isoformat())
        outcome.rows_removed = before if dry_run else 0
        return outcome
    bytes_per_row = _bytes_per_row(conn, target)
    removed = _delete_in_batches(conn, target, cutoff, deadline=deadline, retry=retry, log=log)
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


def _bytes_per_row(conn: Conn, target: PlainTarget) -> float:
    """The table's average row size (bytes / estimated rows), to estimate the bytes deleted."""
    size = conn.execute(load_sql("queries/retention/table_size.sql"), {"oid": target.oid}).fetchone()
    assert size is not None
    table_bytes, estimated_rows = int(size[0]), int(size[1])
    if estimated_rows <= 0:  # never analyzed: count once (such tables are small)
        estimated_rows = count_rows(conn, target.ident)
    return table_bytes / estimated_rows if estimated_rows > 0 else 0.0


def _delete_in_batches(
    conn: Conn, target: PlainTarget, cutoff: datetime, *, deadline: float, retry: DdlRetry, log: Any
) -> int:
    """DELETE batches of rows older than ``cutoff``, one transaction each, until none is left or
    ``deadline``; each batch deletes exactly the rows it selected. Returns the rows deleted."""
    col = sql.Identifier(target.policy.column)
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
    return removed
