"""Creating partitions lock-safely: ``CREATE TABLE … (LIKE parent INCLUDING ALL)`` then ``ATTACH``.

``CREATE TABLE … PARTITION OF`` would take ACCESS EXCLUSIVE on the parent (every reader and writer
of the table waits); ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, which they never wait on,
plus ACCESS EXCLUSIVE on the new table and on DEFAULT (which it scans for rows of the new range).

Partitions with nothing to move out of DEFAULT are created together, one transaction per table,
the DDL of all of them in one round trip; when DEFAULT is large (each ATTACH scans it while
holding its ACCESS EXCLUSIVE lock) they go one per transaction instead, so no reader of DEFAULT
waits longer than ``lock_timeout`` plus one ATTACH.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from flows.core.db import load_sql
from flows.core.partitioning.catalog import Target, read_children
from flows.partitions.plan import Planned, coverage

Conn = psycopg.Connection[tuple[Any, ...]]

_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
# Above this many rows left in DEFAULT, empty partitions are attached one per transaction.
EMPTY_BATCH_MAX_DEFAULT_ROWS = 100_000
# A CHECK matching the partition bound, added while the new table is empty: ATTACH then proves the
# partition constraint from it instead of scanning the rows just moved in (dropped after ATTACH).
BOUND_CHECK = "pgtender_attach_bound"


@dataclass(frozen=True)
class Shape:
    """What every new partition of a table repeats: owner, explicit grants and the column list.

    Read once per table from the catalog (no lock on the table)."""

    owner: sql.Composable | None  # ALTER TABLE … OWNER TO, when the parent is not ours
    grants: list[tuple[sql.Composable, str | None, bool]]  # privileges, grantee (None: PUBLIC), grantable
    columns: sql.Composable


def read_shapes(conn: Conn, targets: list[Target]) -> dict[int, Shape]:
    """The shape of every target, one query."""
    rows = conn.execute(load_sql("queries/partitions/shape.sql"), {"oids": [t.oid for t in targets]})
    found = {int(oid): (acl, names) for oid, acl, names in rows.fetchall()}
    return {t.oid: _shape(t, *found.get(t.oid, ([], []))) for t in targets}


def read_shape(conn: Conn, target: Target) -> Shape:
    return read_shapes(conn, [target])[target.oid]


def _shape(target: Target, acl: list[Any], names: list[str]) -> Shape:
    grouped: dict[tuple[str | None, bool], list[str]] = {}
    for grantee, privilege, grantable in acl:
        if privilege in _PRIVILEGES:
            grouped.setdefault((grantee, bool(grantable)), []).append(privilege)
    grants: list[tuple[sql.Composable, str | None, bool]] = [
        (sql.SQL(", ").join(sql.SQL(p) for p in sorted(privs)), grantee, grantable)
        for (grantee, grantable), privs in sorted(grouped.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
    ]
    owner = None if target.me == target.owner else sql.Identifier(target.owner)
    return Shape(owner, grants, sql.SQL(", ").join(sql.Identifier(n) for n in names))


def new_table(target: Target, shape: Shape, p: Planned, *, bound_check: bool) -> list[sql.Composable]:
    """The DDL of a standalone table shaped like the parent (not yet attached)."""
    new = sql.Identifier(target.schema, p.name)
    extra: sql.Composable = sql.SQL("")
    if bound_check:
        extra = sql.SQL(", CONSTRAINT {c} CHECK ({k} IS NOT NULL AND {k} >= {lo} AND {k} < {hi})").format(
            c=sql.Identifier(BOUND_CHECK),
            k=sql.Identifier(target.key),
            lo=target.bound(p.lo),
            hi=target.bound(p.hi),
        )
    # Identity stays the parent's (as with PARTITION OF): a copied one would be a 2nd sequence.
    ddl: list[sql.Composable] = [
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING IDENTITY{})").format(
            new, target.ident, extra
        )
    ]
    if shape.owner is not None:
        ddl.append(sql.SQL("ALTER TABLE {} OWNER TO {}").format(new, shape.owner))
    for privs, grantee, grantable in shape.grants:
        ddl.append(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                privs,
                new,
                sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )
    return ddl


def attach(target: Target, p: Planned) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
        target.ident, sql.Identifier(target.schema, p.name), target.bound(p.lo), target.bound(p.hi)
    )


LOCK_PARENT = sql.SQL("LOCK TABLE ONLY {} IN SHARE UPDATE EXCLUSIVE MODE")


def lock_parent(c: Conn, target: Target) -> None:
    """SHARE UPDATE EXCLUSIVE on the parent: writers and readers go on; it serialises maintainers.

    ONLY: the partitions are not locked (``LOCK TABLE`` recurses by default), so a session holding
    one of them, or autovacuum working on one, does not hold the run up."""
    c.execute(LOCK_PARENT.format(target.ident))


# What a DDL batch raises when another session created one of its partitions first (same name, or an
# overlapping range): the transaction rolls back and the batch is tried again against the catalog.
CONFLICTS: tuple[type[BaseException], ...] = (
    psycopg.errors.DuplicateTable,
    psycopg.errors.InvalidObjectDefinition,
)


def create_empty(
    c: Conn, target: Target, shape: Shape, batch: list[Planned], *, recheck: bool = False
) -> list[str]:
    """Create and attach partitions that DEFAULT holds no rows for, in ``c``'s open transaction:
    the parent's lock and every partition's DDL in one round trip.

    ``recheck``: read the catalog under the lock first and skip ranges another session covered
    meanwhile; without it a conflict raises one of ``CONFLICTS`` (the caller tries again with it).
    Rows that reached DEFAULT since the plan make ATTACH fail with ``CheckViolation`` (the caller
    moves them instead)."""
    if recheck:
        lock_parent(c, target)
        children = read_children(c, [target.oid])[target.oid]
        batch = [p for p in batch if coverage(children, p.lo, p.hi) == "free"]
    ddl: list[sql.Composable] = [] if recheck else [LOCK_PARENT.format(target.ident)]
    for p in batch:
        ddl += [*new_table(target, shape, p, bound_check=False), attach(target, p)]
    if batch:
        c.execute(sql.SQL("; ").join(ddl))
    return [p.name for p in batch]


def empty_batches(empty: list[Planned], default_rows: int) -> list[list[Planned]]:
    """All together when DEFAULT is small, else one per transaction (each ATTACH scans DEFAULT)."""
    if not empty:
        return []
    if default_rows <= EMPTY_BATCH_MAX_DEFAULT_ROWS:
        return [empty]
    return [[p] for p in empty]
