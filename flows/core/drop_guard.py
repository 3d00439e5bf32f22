"""What undoing migrations would destroy, found by doing it in a transaction that is rolled back.

Each down step runs inside a savepoint (under a short ``lock_timeout``, retried like any DDL); the
catalog before and after says which tables, partitions and materialized views it drops (by oid),
which tables it rewrites or truncates (relfilenode) and how many rows it deletes from tables that
stay (the transaction's own statistics); the rows of what disappears are counted exactly before the
savepoint is rolled back. Then the step runs for real inside the outer transaction, so the next
step is judged on the state it will meet, and at the end everything is rolled back: PostgreSQL's
DDL is transactional, the database is exactly as it was.

``schema_migrations`` (the versions being undone) is bookkeeping, not data; relations that an
earlier down step of the same plan creates are derived from the data, not data of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from flows.core.db import load_sql
from flows.core.ddl import run_locked
from flows.core.logs import get_logger
from flows.core.policy.partitions import DdlRetry

Conn = psycopg.Connection[tuple[Any, ...]]
StepRun = tuple[str, int, Callable[[Conn], None]]  # label, version, what the step executes


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # r | p | m
    filenode: int
    root: int
    deleted: int
    bookkeeping: bool

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema != "public" else self.name


@dataclass(frozen=True)
class Dropped:
    """A relation a step drops, with the rows it holds (partitioned tables hold none themselves)."""

    relation: Relation
    rows: int
    root: Relation  # the top of its partition tree (itself when it is in none)
    existed: bool  # there before the plan started (not made by an earlier down step)


@dataclass
class StepLoss:
    label: str
    version: int
    dropped: list[Dropped] = field(default_factory=list)
    lost: list[tuple[Relation, int]] = field(default_factory=list)  # tables that stay, rows they lose

    def tables(self) -> list[tuple[Relation, int, int]]:
        """Per table (a partition tree counts once, as its top table): rows, partitions dropped."""
        out: dict[int, tuple[Relation, int, int]] = {}
        for d in self.dropped:
            if d.relation.kind == "m" or not d.existed or d.relation.bookkeeping:
                continue
            rel, rows, parts = out.get(d.root.oid, (d.root, 0, 0))
            leaf = d.relation.oid != d.root.oid and d.relation.kind == "r"
            out[d.root.oid] = (rel, rows + d.rows, parts + int(leaf))
        return list(out.values())

    @property
    def rows(self) -> int:
        return sum(rows for _, rows, _ in self.tables())


def _snapshot(conn: Conn) -> dict[int, Relation]:
    rows = conn.execute(load_sql("queries/migrations/relations.sql")).fetchall()
    return {int(r[0]): Relation(*r) for r in rows}


def _count(conn: Conn, rel: Relation) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(rel.ident)).fetchone()
    return int(row[0]) if row else 0


def _judge(conn: Conn, label: str, version: int, run: Callable[[Conn], None], start: set[int]) -> StepLoss:
    """One step in a savepoint that is rolled back; then counted in the state before it."""
    before = _snapshot(conn)
    with conn.transaction() as savepoint:
        run(conn)
        after = _snapshot(conn)
        stays = [r for oid, r in before.items() if oid in after and r.kind == "r"]
        rewritten = [r for r in stays if after[r.oid].filenode != r.filenode]
        counts_after = {r.oid: _count(conn, r) for r in rewritten}
        deleted = {r.oid: after[r.oid].deleted - r.deleted for r in stays if r not in rewritten}
        raise psycopg.Rollback(savepoint)
    loss = StepLoss(label, version)
    for oid, rel in before.items():
        if oid not in after:
            rows = _count(conn, rel) if rel.kind in ("r", "m") else 0
            loss.dropped.append(Dropped(rel, rows, before.get(rel.root, rel), oid in start))
    for rel in rewritten:
        if not rel.bookkeeping and (gone := _count(conn, rel) - counts_after[rel.oid]) > 0:
            loss.lost.append((rel, gone))
    loss.lost += [(before[oid], n) for oid, n in deleted.items() if n > 0 and not before[oid].bookkeeping]
    run(conn)  # on to the state the next step meets
    return loss


def inspect(conn: Conn, steps: Sequence[StepRun], *, retry: DdlRetry | None = None) -> list[StepLoss]:
    """What each step of ``steps`` (in order) would drop; nothing is changed."""
    retry = retry or DdlRetry()

    def work(c: Conn) -> list[StepLoss]:
        out: list[StepLoss] = []
        with c.transaction() as everything:
            start = set(_snapshot(c))
            out = [_judge(c, label, version, run, start) for label, version, run in steps]
            raise psycopg.Rollback(everything)
        return out

    return run_locked(conn, work, retry=retry, what="inspect the down steps", log=get_logger())
