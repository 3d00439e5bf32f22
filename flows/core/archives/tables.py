"""Whole-table dumps: a table (a partitioned one with every partition) in the dump format, each
with its manifest, verified in the store. What the rollback guard takes before it drops data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from flows.core import clock
from flows.core.archives.copy_out import columns, copy_to_store, dump_stem
from flows.core.archives.manifest import DUMP_FORMAT, verify_dump, write_manifest
from flows.core.archives.store import ArchiveRef, Store
from flows.core.ddl import run_locked
from flows.core.logs import get_logger
from flows.core.policy.partitions import DdlRetry

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class TableToDump:
    """A table (``partitioned``: with its whole tree) and the relations whose rows it holds."""

    oid: int
    schema: str
    name: str
    partitioned: bool
    leaves: dict[int, tuple[str, str]] = field(default_factory=dict)  # oid -> (schema, name)


@dataclass(frozen=True)
class DumpedTable:
    table: TableToDump
    manifest: ArchiveRef
    rows: int
    leaf_rows: dict[int, int]  # oid -> rows each relation held when dumped


def _database(conn: Conn) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    return str(row[0]) if row else ""


def dump_table(
    conn: Conn, store: Store, table: TableToDump, *, owner: str, reason: str, retry: DdlRetry
) -> DumpedTable:
    """Dump one table under a SHARE lock (writers wait; its rows are counted in the same
    transaction), write its manifest, then verify the dump in the store."""
    ident = sql.Identifier(table.schema, table.name)
    cols = columns(conn, table.schema, table.name)
    select = sql.SQL("SELECT {} FROM {} {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        sql.SQL("") if table.partitioned else sql.SQL("ONLY"),
        ident,
    )
    database = _database(conn)
    stem = dump_stem(database, table.schema, table.name, table.oid)
    data = f"{stem}.{clock.now().strftime('%Y%m%dT%H%M%S%fZ')}.{owner}.copy.gz"

    def work(c: Conn) -> tuple[dict[int, int], str]:
        c.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(ident))  # partitions too
        counts = {}
        for oid, (schema, name) in table.leaves.items():
            row = c.execute(
                sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, name))
            ).fetchone()
            counts[oid] = int(row[0]) if row else 0
        return counts, copy_to_store(c, sql.SQL("({})").format(select), store, data, owner=owner)

    what = f"dump {table.schema}.{table.name}"
    leaf_rows, sha = run_locked(conn, work, retry=retry, what=what, log=get_logger())
    rows = sum(leaf_rows.values())
    manifest: dict[str, Any] = {
        "format": DUMP_FORMAT,
        "kind": "table",
        "file": data,
        "database": database,
        "schema": table.schema,
        "table": table.name,
        "oid": table.oid,
        "partitions": sorted(name for schema, name in table.leaves.values() if table.partitioned),
        "columns": cols,
        "rows": rows,
        "sha256": sha,
        "reason": reason,
        "created_at": clock.now().isoformat(),
    }
    name = f"{stem}.json"
    write_manifest(store, name, manifest, owner)
    verify_dump(store, name)
    return DumpedTable(table, store.ref(name), rows, leaf_rows)
