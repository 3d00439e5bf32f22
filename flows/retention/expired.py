"""Which partitions have expired, and the counting and detaching every mode shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from flows.core.db import load_sql
from flows.core.partitioning.catalog import Child, Target, read_children
from flows.core.partitioning.intervals import floor_to, subtract_age
from flows.core.policy.partitions import TablePolicy

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class Expired:
    name: str
    lo: datetime
    hi: datetime
    rows: int
    rows_exact: bool
    bytes: int
    oid: int = 0


def count_rows(conn: Conn, table: sql.Composable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    return int(row[0]) if row else 0


def relation_bytes(conn: Conn, oids: list[int]) -> dict[int, int]:
    """Total size (table, indexes, TOAST) of each relation, one query; waits for their ACCESS SHARE
    locks."""
    if not oids:
        return {}
    rows = conn.execute(load_sql("queries/retention/relation_bytes.sql"), {"oids": oids}).fetchall()
    return {int(oid): int(size or 0) for oid, size in rows}


def expiry_cutoff(policy: TablePolicy, now: datetime) -> datetime | None:
    """Partitions ending at or before this instant have expired: ``now - retention``, and never
    later than the start of the current interval (None: kept forever)."""
    if policy.retention is None:
        return None
    return min(subtract_age(now, policy.retention), floor_to(now, policy.interval))


def expired_children(children: list[Child], policy: TablePolicy, now: datetime) -> list[Child]:
    """The partitions among ``children`` that have expired at ``now`` (DEFAULT never does)."""
    cutoff = expiry_cutoff(policy, now)
    if cutoff is None:
        return []
    return [
        c for c in children if not c.is_default and c.lo is not None and c.hi is not None and c.hi <= cutoff
    ]


def expired_partitions(conn: Conn, target: Target, *, now: datetime, exact: bool) -> list[Expired]:
    """Partitions wholly older than ``now - retention`` and older than the current interval."""
    if target.policy.retention is None:
        return []
    old = expired_children(read_children(conn, [target.oid])[target.oid], target.policy, now)
    sizes = relation_bytes(conn, [c.oid for c in old])
    out: list[Expired] = []
    for child in old:
        assert child.lo is not None and child.hi is not None
        if exact or child.estimated_rows < 0:
            n, is_exact = count_rows(conn, sql.Identifier(target.schema, child.name)), True
        else:
            n, is_exact = child.estimated_rows, False
        out.append(
            Expired(
                name=child.name,
                lo=child.lo,
                hi=child.hi,
                rows=n,
                rows_exact=is_exact,
                bytes=sizes.get(child.oid, 0),
                oid=child.oid,
            )
        )
    return sorted(out, key=lambda e: e.lo)


def detach_partition(c: Conn, target: Target, name: str) -> None:
    c.execute(
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
            target.ident, sql.Identifier(target.schema, name)
        )
    )


def range_rows_in_parent(c: Conn, target: Target, expired: list[Expired]) -> int:
    """Rows of the ``expired`` ranges the parent still shows (after their partitions' DETACH: must
    be 0), one query for all of them."""
    key = sql.Identifier(target.key)
    ranges = [
        sql.SQL("({k} >= {lo} AND {k} < {hi})").format(k=key, lo=target.bound(e.lo), hi=target.bound(e.hi))
        for e in expired
    ]
    row = c.execute(
        sql.SQL("SELECT count(*) FROM {t} WHERE {ranges}").format(
            t=target.ident, ranges=sql.SQL(" OR ").join(ranges)
        )
    ).fetchone()
    return int(row[0]) if row else 0
