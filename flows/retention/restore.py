"""Restore of a verified dump (the way back from dump-mode retention): once per partition."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from flows.core.db import load_sql
from flows.core.ddl import expect_equal
from flows.core.errors import ConfigError
from flows.core.partitioning.catalog import Target
from flows.core.policy.partitions import TablePolicy
from flows.retention.archive import verify_dump

Conn = psycopg.Connection[tuple[Any, ...]]


def restore_dump(conn: Conn, manifest_path: Path, *, schema: str, table: str, key: str | None = None) -> int:
    """Load a verified dump into an existing table with the same columns; returns rows loaded.

    Refused (ConfigError, nothing loaded) when the table already holds rows of the dump's range on
    the partition key: the partition was restored before, or never dropped. Restores into the same
    table wait for each other.
    """
    manifest = verify_dump(manifest_path)
    data = manifest_path.parent / manifest["file"]
    key = key or manifest.get("key")
    if not key:
        raise ConfigError(f"{manifest_path.name} does not name its partition key: pass key=")
    ident = sql.Identifier(schema, table)
    cols = sql.SQL(", ").join(sql.Identifier(col) for col in manifest["columns"])
    lo, hi = datetime.fromisoformat(manifest["lower"]), datetime.fromisoformat(manifest["upper"])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(load_sql("queries/locks/restore.sql"), {"table": ident.as_string(conn)})
        row = cur.execute(
            load_sql("queries/retention/key_type.sql"), {"table": ident.as_string(conn), "key": key}
        )
        found = row.fetchone()
        if found is None:
            raise ConfigError(f"{schema}.{table} has no column {key}")
        bound = Target(schema, table, 0, key, str(found[0]), "", None, TablePolicy()).bound
        present = cur.execute(
            sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
                t=ident, k=sql.Identifier(key), lo=bound(lo), hi=bound(hi)
            )
        ).fetchone()
        if present and present[0]:
            raise ConfigError(
                f"{schema}.{table} already holds {present[0]} rows of {manifest['partition']}'s range"
                f" [{manifest['lower']}, {manifest['upper']}): restored before, or never dropped;"
                " nothing loaded"
            )
        with (
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(ident, cols)) as copy,
            gzip.open(data, "rb") as fh,
        ):
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                copy.write(chunk)
        loaded = cur.rowcount
        expect_equal(f"restore of {data.name}", int(manifest["rows"]), loaded)
    return loaded
