"""COPY a relation out into an archive store: gzip, a partial its run owns, then an atomic publish."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from flows.core.archives.ownership import partial_name
from flows.core.archives.store import Store

Conn = psycopg.Connection[tuple[Any, ...]]
StepHook = Callable[[str], None]


def no_hook(_step: str) -> None:
    return None


def name_part(text: str) -> str:
    """A database, schema or table name as one safe segment of a file name."""
    return quote(text, safe="").replace(".", "%2E")


def dump_stem(database: str, schema: str, table: str, oid: int) -> str:
    return f"{name_part(database)}.{name_part(schema)}.{name_part(table)}.{oid}"


def columns(conn: Conn, schema: str, name: str) -> list[str]:
    """The stored columns of a relation, in order (generated columns are recomputed on restore)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        (sql.Identifier(schema, name).as_string(conn),),
    ).fetchall()
    return [r[0] for r in rows]


class _Hashing:
    """A write-only file that hashes what passes through it on its way to the store."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return int(self.raw.write(data))

    def flush(self) -> None:
        self.raw.flush()


def copy_to_store(
    conn: Conn,
    source: sql.Composable,
    store: Store,
    final: str,
    *,
    owner: str,
    on_step: StepHook = no_hook,
) -> str:
    """``COPY <source> TO STDOUT`` into ``final`` in ``store``, through ``<final>.<owner>.partial``;
    returns the sha256 of what was written (verify_dump re-reads it from the store).
    ``on_step("copying")`` after each chunk, ``on_step("copied")`` once written, before the publish."""
    with store.write(partial_name(final, owner), final, after_write=lambda: on_step("copied")) as raw:
        hashing = _Hashing(raw)
        with (
            gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=6) as out,
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {} TO STDOUT").format(source)) as copy,
        ):
            for chunk in copy:
                out.write(chunk)
                on_step("copying")
    return hashing.digest.hexdigest()
