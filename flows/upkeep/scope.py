"""Which tables upkeep looks at: the schema's tables, narrowed by the policy's include/exclude lists
(a partitioned table named there covers its partitions). A name that is no table of the schema is
bad input: one line, exit 2, before anything is touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from flows.core.db import load_sql
from flows.core.errors import ConfigError
from flows.core.policy.upkeep import UpkeepPolicy

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Table:
    oid: int
    name: str
    partitioned: bool
    root: str | None  # the partitioned table at the top of its tree (None: not in one)


@dataclass(frozen=True)
class Scope:
    schema: str
    tables: tuple[Table, ...]

    @property
    def oids(self) -> list[int]:
        return [t.oid for t in self.tables]

    @property
    def parents(self) -> list[Table]:
        return [t for t in self.tables if t.partitioned]


def _covers(table: Table, names: tuple[str, ...]) -> bool:
    return table.name in names or (table.root is not None and table.root in names)


def resolve(conn: Conn, policy: UpkeepPolicy) -> Scope:
    """The tables of ``policy.schema_name`` upkeep looks at; ConfigError for a name that is no table."""
    key = {"schema": policy.schema_name}
    exists = conn.execute(load_sql("queries/upkeep/schema_exists.sql"), key).fetchone()
    if not (exists and exists[0]):
        raise ConfigError(f"upkeep.schema_name {policy.schema_name!r} is not a schema of this database")
    rows = conn.execute(load_sql("queries/upkeep/tables.sql"), key).fetchall()
    every = [Table(int(r[0]), str(r[1]), r[2] == "p", r[3]) for r in rows]
    known = {t.name for t in every}
    for listed, label in ((policy.include, "include"), (policy.exclude, "exclude")):
        missing = sorted(set(listed) - known)
        if missing:
            raise ConfigError(
                f"upkeep.{label} names {missing[0]!r}, which is not a table of schema {policy.schema_name!r}"
            )
    chosen = tuple(
        t
        for t in every
        if (not policy.include or _covers(t, policy.include)) and not _covers(t, policy.exclude)
    )
    return Scope(policy.schema_name, chosen)
