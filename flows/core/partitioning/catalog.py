"""The partition catalog: policy tables resolved against PostgreSQL's catalog, their partitions and
bounds, and how far ahead they reach. Shared by the partitions and retention jobs and the health
probes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from flows.core.db import load_sql
from flows.core.errors import ConfigError
from flows.core.policy.partitions import TablePolicy

Conn = psycopg.Connection[tuple[Any, ...]]

KEY_TYPES = {"timestamp with time zone", "timestamp without time zone", "date"}


@dataclass(frozen=True)
class Target:
    """A policy table resolved against the catalog."""

    schema: str
    name: str
    oid: int
    key: str
    key_type: str
    owner: str
    default: str | None
    policy: TablePolicy
    me: str = ""  # current_user of the session that resolved it

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def bound(self, moment: datetime) -> sql.Composable:
        """A bound literal of the key's own type (UTC for timestamp/date keys)."""
        if self.key_type == "timestamp with time zone":
            return sql.Literal(moment.astimezone(UTC))
        if self.key_type == "date":
            return sql.Literal(moment.astimezone(UTC).date())
        return sql.Literal(moment.astimezone(UTC).replace(tzinfo=None))


@dataclass(frozen=True)
class Child:
    name: str
    is_default: bool
    lo: datetime | None
    hi: datetime | None
    estimated_rows: int = -1  # pg_class.reltuples: -1 when never analyzed
    oid: int = 0


def resolve_targets(conn: Conn, tables: dict[str, TablePolicy], *, what: str = "partitions") -> list[Target]:
    """Check every policy table against the catalog; ConfigError (nothing changed) on the first bad one."""
    names = list(tables)
    rows = conn.execute(
        load_sql("queries/catalog/parents.sql"),
        {"schemas": [tables[n].namespace for n in names], "tables": names},
    ).fetchall()
    out: list[Target] = []
    for row in rows:
        nsp, rel, oid, relkind, strategy, key_columns, key, key_type, owner, default, me = row
        label = f"{what} policy: table {nsp}.{rel}"
        if oid is None:
            raise ConfigError(f"{label} does not exist")
        if relkind != "p":
            raise ConfigError(f"{label} is not a partitioned table")
        if strategy != "r" or key_columns != 1 or key is None:
            raise ConfigError(f"{label} is not RANGE-partitioned on a single column")
        if key_type not in KEY_TYPES:
            raise ConfigError(f"{label} is partitioned on {key} of type {key_type}, not a date/time")
        out.append(Target(nsp, rel, int(oid), key, key_type, owner, default, tables[rel], me))
    return out


def read_children(conn: Conn, oids: list[int]) -> dict[int, list[Child]]:
    """Every partition of each parent with its bounds, ordered by lower bound (DEFAULT first).

    Takes no lock on any partition, so it never waits behind a session holding one (a concurrent
    ATTACH holds ACCESS EXCLUSIVE on DEFAULT until it commits)."""
    out: dict[int, list[Child]] = {oid: [] for oid in oids}
    for parent, name, is_default, lo, hi, estimate, oid in conn.execute(
        load_sql("queries/catalog/children.sql"), {"oids": oids}
    ).fetchall():
        out.setdefault(int(parent), []).append(Child(name, bool(is_default), lo, hi, int(estimate), int(oid)))
    return out


def horizon_days(children: list[Child], now: datetime) -> float:
    """How far ahead of ``now`` partitions exist without a gap (0 when none covers ``now``)."""
    ranges = sorted((c.lo, c.hi) for c in children if c.lo is not None and c.hi is not None)
    end: datetime | None = None
    for lo, hi in ranges:
        assert lo is not None and hi is not None
        if end is None:
            if lo <= now < hi:
                end = hi
        elif lo == end:
            end = hi
        elif lo > end:
            break
    return 0.0 if end is None else round((end - now).total_seconds() / 86_400, 3)
