"""Helpers shared by tests/test_partitions.py and tests/test_retention.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from flows.core.policy.partitions import PartitionsPolicy

WEIRD = 'we"ird; tab le'


def fast_retry(**overrides: Any) -> dict[str, Any]:
    """DDL retry settings that keep tests quick."""
    return {"lock_timeout_ms": 100, "attempts": 3, "backoff_base_ms": 20, "backoff_max_ms": 100, **overrides}


def policy(tables: dict[str, Any] | None = None, **retry: Any) -> PartitionsPolicy:
    return PartitionsPolicy.model_validate({**fast_retry(**retry), "tables": tables or {}})


def partitions_of(conn: psycopg.Connection[Any], parent: str, schema: str = "public") -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (sql.Identifier(schema, parent).as_string(conn),),
    ).fetchall()
    return [r[0] for r in rows]


def count(conn: psycopg.Connection[Any], table: str, schema: str = "public") -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
    assert row is not None
    return int(row[0])


def rows_digest(conn: psycopg.Connection[Any], table: str, schema: str = "public") -> str:
    """An order-independent digest of every row of a table."""
    row = conn.execute(
        sql.SQL("SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} t").format(
            sql.Identifier(schema, table)
        )
    ).fetchone()
    assert row is not None
    return str(row[0])


def create_weird_table(conn: psycopg.Connection[Any], name: str = WEIRD) -> None:
    """A RANGE-partitioned table whose name needs quoting everywhere, with a DEFAULT partition."""
    t = sql.Identifier(name)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY, ts timestamptz NOT NULL,"
            " note text, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)"
        ).format(t)
    )
    conn.execute(sql.SQL("CREATE INDEX ON {} (note)").format(t))
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(sql.Identifier(name + "_default"), t)
    )
    conn.execute(sql.SQL("GRANT SELECT ON {} TO pgtender_checker").format(t))


@contextmanager
def lock_held(
    dsn: str, table: str, mode: str = "ACCESS EXCLUSIVE", release_after: float | None = None
) -> Iterator[None]:
    """Another session holds ``mode`` on ``table`` (until the block ends, or ``release_after`` s)."""
    holder = psycopg.connect(dsn)
    holder.execute(sql.SQL("LOCK TABLE {} IN " + mode + " MODE").format(sql.Identifier(table)))
    timer = None
    if release_after is not None:
        timer = threading.Timer(release_after, holder.rollback)
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.join()
        holder.rollback()
        holder.close()
