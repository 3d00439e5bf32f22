"""The DEFAULT rescue: rows parked in DEFAULT move into their new partition, one interval (month,
week, day) per transaction, with counts checked at every step.

One step, in one transaction under ``lock_timeout`` (retried as a whole):
  1. SHARE UPDATE EXCLUSIVE on the parent, EXCLUSIVE on DEFAULT: readers go on; only writes bound
     for DEFAULT wait; the interval's rows in DEFAULT can no longer change; they are counted.
  2. A standalone table shaped like the parent, with a CHECK of the partition's bound (free to add
     while the table is empty), takes the rows: ``DELETE … RETURNING`` feeding an ``INSERT``.
     Inserted = counted, none of the interval left in DEFAULT, the new table holds exactly that many
     — or the step rolls back and nothing moved.
  3. ATTACH (ACCESS EXCLUSIVE on DEFAULT from here to the commit): it scans what is left in DEFAULT,
     and proves the new table's rows from the CHECK instead of scanning them; the CHECK is dropped.

A reader of DEFAULT therefore waits at most ``lock_timeout`` (queued behind the step's lock request)
plus one ATTACH and commit, never for the whole rescue. A step that fails leaves the intervals
before it committed and the rest in DEFAULT, where the next run finds them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from flows.core.ddl import expect_equal
from flows.core.partitioning.catalog import Target, read_children
from flows.partitions.create import BOUND_CHECK, Shape, attach, lock_parent, new_table
from flows.partitions.plan import Planned, coverage

Conn = psycopg.Connection[tuple[Any, ...]]


def _count(c: Conn, table: sql.Composable, key: str, lo: sql.Composable, hi: sql.Composable) -> int:
    row = c.execute(
        sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
            t=table, k=sql.Identifier(key), lo=lo, hi=hi
        )
    ).fetchone()
    return int(row[0]) if row else 0


def rescue_step(c: Conn, target: Target, shape: Shape, p: Planned) -> int | None:
    """Create ``p``, move its rows out of DEFAULT and attach it, in ``c``'s open transaction.

    Returns the rows moved; None when another session covered the range meanwhile."""
    assert target.default is not None
    default = sql.Identifier(target.schema, target.default)
    lock_parent(c, target)
    c.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(default))
    if coverage(read_children(c, [target.oid])[target.oid], p.lo, p.hi) != "free":
        return None
    new = sql.Identifier(target.schema, p.name)
    lo, hi = target.bound(p.lo), target.bound(p.hi)
    expected = _count(c, default, target.key, lo, hi)  # exact: DEFAULT is locked against writes
    c.execute(sql.SQL("; ").join(new_table(target, shape, p, bound_check=True)))
    what = f"moving {target.name} DEFAULT rows into {p.name}"
    if expected:
        cur = c.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {d} WHERE {k} >= {lo} AND {k} < {hi} RETURNING {cols})"
                " INSERT INTO {new} ({cols}) SELECT {cols} FROM moved"
            ).format(d=default, k=sql.Identifier(target.key), lo=lo, hi=hi, cols=shape.columns, new=new)
        )
        expect_equal(f"{what} (inserted)", expected, cur.rowcount)
        expect_equal(f"{what} (left in DEFAULT)", 0, _count(c, default, target.key, lo, hi))
        row = c.execute(sql.SQL("SELECT count(*) FROM {}").format(new)).fetchone()
        expect_equal(f"{what} (in new partition)", expected, int(row[0]) if row else -1)
    c.execute(
        sql.SQL("{}; ALTER TABLE {} DROP CONSTRAINT {}").format(
            attach(target, p), new, sql.Identifier(BOUND_CHECK)
        )
    )
    return expected
