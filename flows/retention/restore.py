"""Restore of a verified dump (the way back from dump-mode retention): once per partition. The
loader is flows.core.archives.restore's (a guarded rollback's dumps load the same way)."""

from __future__ import annotations

from typing import Any

import psycopg

from flows.core.archives import restore as loader
from flows.core.archives.store import ArchiveRef, locate
from flows.core.policy.archives import ArchiveStorage

Conn = psycopg.Connection[tuple[Any, ...]]


def restore_dump(
    conn: Conn,
    manifest: ArchiveRef,
    *,
    schema: str,
    table: str,
    key: str | None = None,
    storage: ArchiveStorage | None = None,
) -> int:
    """Load a verified dump (its manifest's path, or URL in an object store reached with
    ``storage``) into an existing table with the same columns; returns rows loaded.

    Refused (ConfigError, nothing loaded) when the table already holds rows of the dump's range on
    the partition key: the partition was restored before, or never dropped. Restores into the same
    table wait for each other.
    """
    store, name = locate(manifest, storage)
    return loader.restore_dump(conn, store, name, schema=schema, table=table, key=key)
