"""Which partitions have expired, and the counting and detaching every mode shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from flows.core.catalog import Target, read_children
from flows.core.db import load_sql
from flows.core.intervals import floor_to, subtract_age

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


def relation_bytes(conn: Conn, oid: int) -> int:
    """Total size (table, indexes, TOAST) of one relation; waits for its ACCESS SHARE lock."""
    row = conn.execute(load_sql("queries/retention/relation_bytes.sql"), {"oid": oid}).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def expired_partitions(conn: Conn, target: Target, *, now: datetime, exact: bool) -> list[Expired]:
    """Partitions wholly older than ``now - retention`` and older than the current interval."""
    policy = target.policy
    if policy.retention is None:
        return []
    cutoff = min(subtract_age(now, policy.retention), floor_to(now, policy.interval))
    out: list[Expired] = []
    for child in read_children(conn, [target.oid])[target.oid]:
        name, lo, hi, estimate, oid = child.name, child.lo, child.hi, child.estimated_rows, child.oid
        if child.is_default or lo is None or hi is None or hi > cutoff:
            continue
        size = relation_bytes(conn, oid)
        if exact or int(estimate) < 0:
            n, is_exact = count_rows(conn, sql.Identifier(target.schema, name)), True
        else:
            n, is_exact = int(estimate), False
        out.append(
            Expired(name=name, lo=lo, hi=hi, rows=n, rows_exact=is_exact, bytes=int(size), oid=int(oid))
        )
    return sorted(out, key=lambda e: e.lo)


def detach_partition(c: Conn, target: Target, name: str) -> None:
    c.execute(
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
            target.ident, sql.Identifier(target.schema, name)
        )
    )


def range_rows_in_parent(c: Conn, target: Target, exp: Expired) -> int:
    row = c.execute(
        sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
            t=target.ident, k=sql.Identifier(target.key), lo=target.bound(exp.lo), hi=target.bound(exp.hi)
        )
    ).fetchone()
    return int(row[0]) if row else 0
