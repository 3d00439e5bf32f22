"""What upkeep reads about indexes: invalid ones, bloated ones, unused and duplicate ones.

- Invalid: ``pg_index.indisvalid`` false. A plain index (left by a failed ``CREATE INDEX
  CONCURRENTLY``) is rebuilt; a ``<index>_ccnew``/``_ccold`` copy left by a failed ``REINDEX
  CONCURRENTLY`` (its index exists beside it) is dropped, as PostgreSQL's documentation advises; a
  partitioned index is invalid because a partition lacks its index (reported: attach one); an index
  being built right now is left alone.
- Bloat: btree indexes of at least ``min_index_mb``, estimated from the catalog; with pgstattuple
  installed (and readable), ``pgstatindex`` measures those the estimate cannot judge or puts at half
  the threshold or more: leaf density against the index's fillfactor.
- Unused: no scan since the statistics were reset, for at least ``unused_days`` (counted from the
  reset, else pgtender's first run here, and from the day upkeep first saw the index unscanned);
  unique indexes and indexes behind constraints never count. Duplicates: the same definition twice.
  Both are reported, never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from flows.core.db import load_sql
from flows.core.policy.upkeep import UpkeepThresholds
from flows.upkeep.scope import Scope

Conn = psycopg.Connection[tuple[Any, ...]]
MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class InvalidIndex:
    index: str
    table: str
    kind: str  # rebuild | leftover | partitioned | building
    unique: bool
    bytes: int
    base: str | None  # a leftover's index
    definition: str


@dataclass(frozen=True, kw_only=True)
class Bloat:
    index: str
    table: str
    bytes: int
    bloat_pct: float | None  # None: cannot be judged (no column statistics, no pgstattuple)
    source: str  # estimate | pgstatindex


@dataclass(frozen=True, kw_only=True)
class UnusedIndex:
    index: str
    table: str
    bytes: int
    partitions: int  # a partitioned index: its partitions' indexes (their scans are summed)
    first_seen: datetime  # since when upkeep has seen it unscanned
    counted_since: datetime  # since when its scans count: the later of first_seen and the reset
    unused: bool  # unscanned for at least unused_days (else: watched)


@dataclass(frozen=True, kw_only=True)
class DuplicateGroup:
    table: str
    indexes: tuple[str, ...]
    enforcing: tuple[bool, ...]  # unique or behind a constraint: the one to keep
    bytes: tuple[int, ...]
    definition: str

    @property
    def keep(self) -> str:
        return next((i for i, e in zip(self.indexes, self.enforcing, strict=True) if e), self.indexes[0])

    @property
    def redundant(self) -> list[str]:
        return [i for i in self.indexes if i != self.keep]


def _kind(relkind: str, building: bool, base: str | None) -> str:
    if building:
        return "building"
    if relkind == "I":
        return "partitioned"
    return "leftover" if base is not None else "rebuild"


def invalid_indexes(conn: Conn, scope: Scope) -> list[InvalidIndex]:
    if not scope.tables:
        return []
    rows = conn.execute(load_sql("queries/upkeep/invalid_indexes.sql"), {"tables": scope.oids}).fetchall()
    return [
        InvalidIndex(
            index=str(r[1]),
            table=str(r[2]),
            kind=_kind(str(r[3]), bool(r[6]), r[7]),
            unique=bool(r[4]),
            bytes=int(r[5]),
            base=r[7],
            definition=str(r[8]),
        )
        for r in rows
    ]


def pgstattuple_schema(conn: Conn) -> str | None:
    row = conn.execute(load_sql("queries/upkeep/pgstattuple.sql")).fetchone()
    return str(row[0]) if row else None


def measured_bloat(conn: Conn, schema: str, oid: int, fillfactor: int) -> float | None:
    """``pgstatindex``'s leaf density as bloat against the fillfactor (None: empty, or not allowed
    to read it: pgstatindex needs pg_stat_scan_tables)."""
    statement = sql.SQL("SELECT avg_leaf_density FROM {}(%(oid)s::oid::regclass)").format(
        sql.Identifier(schema, "pgstatindex")
    )
    try:
        with conn.transaction():
            row = conn.execute(statement, {"oid": oid}).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    density = float(row[0]) if row and row[0] is not None else math.nan
    if math.isnan(density):  # no leaf page with tuples
        return None
    return max(0.0, 100.0 * (1.0 - density / fillfactor))


def _estimate(relpages: int, expected: float | None) -> float | None:
    if expected is None or relpages <= 0:
        return None
    return max(0.0, 100.0 * (relpages - expected) / relpages)


def bloat(conn: Conn, scope: Scope, thresholds: UpkeepThresholds) -> list[Bloat]:
    """Every btree index of at least ``min_index_mb``, with its bloat (estimated, or measured)."""
    if not scope.tables:
        return []
    rows = conn.execute(
        load_sql("queries/upkeep/bloat_estimate.sql"),
        {"tables": scope.oids, "min_bytes": int(thresholds.min_index_mb * MB)},
    ).fetchall()
    stattuple = pgstattuple_schema(conn) if rows else None
    out = []
    for oid, index, table, relpages, _reltuples, fillfactor, size, _estimated, expected in rows:
        pct = _estimate(int(relpages), None if expected is None else float(expected))
        source = "estimate"
        if stattuple is not None and (pct is None or pct >= thresholds.bloat_pct / 2):
            measured = measured_bloat(conn, stattuple, int(oid), int(fillfactor))
            if measured is not None:
                pct, source = measured, "pgstatindex"
        out.append(Bloat(index=str(index), table=str(table), bytes=int(size), bloat_pct=pct, source=source))
    return out


def stats_since(conn: Conn, now: datetime) -> datetime:
    """Since when the statistics counters have been counting (see stats_since.sql)."""
    row = conn.execute(load_sql("queries/upkeep/stats_since.sql")).fetchone()
    reset, first_run = (row or (None, None))[:2]
    return reset or first_run or now


def unused_indexes(conn: Conn, scope: Scope, days: int, now: datetime) -> list[UnusedIndex]:
    """Indexes with no scan since the statistics were reset: unused once that has lasted ``days``."""
    if not scope.tables:
        return []
    rows = conn.execute(load_sql("queries/upkeep/unused_indexes.sql"), {"tables": scope.oids}).fetchall()
    if not rows:
        return []
    since = stats_since(conn, now)
    seen = conn.execute(
        load_sql("queries/upkeep/unused_first_seen.sql"), {"names": [str(r[0]) for r in rows]}
    ).fetchall()
    first: dict[str, datetime] = {}
    for name, text in seen:
        if text:
            first[str(name)] = datetime.fromisoformat(str(text))
    out = []
    for index, table, _scans, size, parts in rows:
        first_seen = min(first.get(str(index), now), now)
        counted = max(first_seen, since)
        out.append(
            UnusedIndex(
                index=str(index),
                table=str(table),
                bytes=int(size),
                partitions=int(parts),
                first_seen=first_seen,
                counted_since=counted,
                unused=now - counted >= timedelta(days=days),
            )
        )
    return out


def duplicate_indexes(conn: Conn, scope: Scope) -> list[DuplicateGroup]:
    if not scope.tables:
        return []
    rows = conn.execute(load_sql("queries/upkeep/duplicate_indexes.sql"), {"tables": scope.oids}).fetchall()
    return [
        DuplicateGroup(
            table=str(r[0]),
            indexes=tuple(str(i) for i in r[1]),
            enforcing=tuple(bool(e) for e in r[2]),
            bytes=tuple(int(b) for b in r[3]),
            definition=str(r[4]),
        )
        for r in rows
    ]
