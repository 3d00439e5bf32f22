"""Load a verified dump back into a table (the way back from dump-mode retention and from a guarded
rollback): read from its store, verified first, counted against its manifest, once."""

from __future__ import annotations

import gzip
from datetime import datetime
from graphlib import TopologicalSorter
from typing import Any

import psycopg
from psycopg import sql

from flows.core.archives.manifest import read_manifest, verify_dump
from flows.core.archives.store import Store
from flows.core.db import load_sql
from flows.core.ddl import expect_equal
from flows.core.errors import ConfigError
from flows.core.partitioning.catalog import Target
from flows.core.policy.partitions import TablePolicy

Conn = psycopg.Connection[tuple[Any, ...]]
_CHUNK = 1 << 20


def _rows_present(
    cur: psycopg.Cursor[Any], ident: sql.Identifier, manifest: dict[str, Any], key: str | None, bound: Any
) -> int:
    if key is None:
        row = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
    else:
        lo, hi = datetime.fromisoformat(manifest["lower"]), datetime.fromisoformat(manifest["upper"])
        row = cur.execute(
            sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
                t=ident, k=sql.Identifier(key), lo=bound(lo), hi=bound(hi)
            )
        ).fetchone()
    return int(row[0]) if row else 0


def restore_dump(
    conn: Conn,
    store: Store,
    name: str,
    *,
    schema: str,
    table: str,
    key: str | None = None,
) -> int:
    """Load the dump of manifest ``name`` into an existing table with the same columns; returns the
    rows loaded. A partition's dump (its manifest has a range) is refused (ConfigError, nothing
    loaded) when the table already holds rows of that range; a whole table's dump when the table
    holds any row. Restores into the same table wait for each other."""
    manifest = verify_dump(store, name)
    ranged = "lower" in manifest and "upper" in manifest
    key = (key or manifest.get("key")) if ranged else None
    if ranged and not key:
        raise ConfigError(f"{name} does not name its partition key: pass key=")
    ident = sql.Identifier(schema, table)
    cols = sql.SQL(", ").join(sql.Identifier(col) for col in manifest["columns"])
    what = f"{manifest.get('partition') or manifest.get('table')}"
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(load_sql("queries/locks/restore.sql"), {"table": ident.as_string(conn)})
        bound = None
        if key is not None:
            found = cur.execute(
                load_sql("queries/retention/key_type.sql"), {"table": ident.as_string(conn), "key": key}
            ).fetchone()
            if found is None:
                raise ConfigError(f"{schema}.{table} has no column {key}")
            bound = Target(schema, table, 0, key, str(found[0]), "", None, TablePolicy()).bound
        present = _rows_present(cur, ident, manifest, key, bound)
        if present:
            where = f" of {what}'s range [{manifest['lower']}, {manifest['upper']})" if ranged else ""
            raise ConfigError(
                f"{schema}.{table} already holds {present} rows{where}: restored before, or never dropped;"
                " nothing loaded"
            )
        with (
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(ident, cols)) as copy,
            store.open_read(manifest["file"]) as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") as fh,
        ):
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                copy.write(chunk)
        loaded = cur.rowcount
        expect_equal(f"restore of {manifest['file']}", int(manifest["rows"]), loaded)
        if not ranged:
            _advance_sequences(cur, ident, manifest["columns"])
    return loaded


def _advance_sequences(cur: psycopg.Cursor[Any], ident: sql.Identifier, cols: list[str]) -> None:
    """A whole table restored into a re-created one: its serial/identity sequences move past the
    loaded keys, so the next insert does not collide with a restored row."""
    for col in cols:
        row = cur.execute(
            load_sql("queries/archives/serial_sequence.sql"), {"table": ident.as_string(cur), "column": col}
        ).fetchone()
        if row and row[0]:
            cur.execute(
                sql.SQL("SELECT setval(%s, max({c})) FROM {t} HAVING max({c}) IS NOT NULL").format(
                    c=sql.Identifier(col), t=ident
                ),
                (row[0],),
            )


def restore_folder(conn: Conn, store: Store) -> list[tuple[str, int]]:
    """Every whole-table dump in ``store`` (a guarded rollback's folder), referenced tables first."""
    dumps = {}
    for name in store.names():
        if name.endswith(".json"):
            found = read_manifest(store, name)
            if found.get("kind") == "table":
                dumps[(str(found["schema"]), str(found["table"]))] = name
    if not dumps:
        raise ConfigError(f"{store.location} holds no table dumps")
    order: TopologicalSorter[tuple[str, str]] = TopologicalSorter({t: () for t in dumps})
    for schema, name, ref_schema, ref_name in conn.execute(load_sql("queries/archives/foreign_keys.sql")):
        child, parent = (schema, name), (ref_schema, ref_name)
        if child in dumps and parent in dumps and child != parent:
            order.add(child, parent)
    return [
        (f"{schema}.{table}", restore_dump(conn, store, dumps[(schema, table)], schema=schema, table=table))
        for schema, table in order.static_order()
    ]
