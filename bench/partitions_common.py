"""Helpers shared by the partitions benchmarks (bench/partitions.py and its parts): scratch
databases cloned from a template, tables shaped like learning_events, the policy, counting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import conninfo, sql

from flows.core import migrations
from flows.core.partitioning import intervals
from flows.core.policy.partitions import PartitionsPolicy

ADMIN = os.environ.get("PGTENDER_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PARTMAN_CONTROL = "/usr/share/postgresql/15/extension/pg_partman.control"


def dsn(name: str) -> str:
    return conninfo.make_conninfo(ADMIN, dbname=name)


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(ADMIN, autocommit=True)


def drop_db(name: str) -> None:
    with admin() as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def clone(template: str, tag: str) -> str:
    name = f"pgtender_bench_part_{tag}"
    drop_db(name)
    with admin() as c:
        c.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return name


def month(offset: int) -> datetime:
    base = intervals.floor_to(datetime.now(UTC), "month")
    return intervals.add_intervals(base, "month", offset)


def ensure_partman() -> bool:
    if Path(PARTMAN_CONTROL).exists():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("pg_partman is not installed and cannot be installed here (need root and apt-get)")
        return False
    print("installing postgresql-15-partman with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql-15-partman"], check=True, env=env)
    return Path(PARTMAN_CONTROL).exists()


def table_name(i: int) -> str:
    return f"bench_t{i:02d}"


def build_template(n_tables: int, with_partman: bool) -> str:
    """Migrated pgtender schema + ``n_tables`` bare partitioned parents (no partitions yet)."""
    name = "pgtender_bench_part_tpl"
    drop_db(name)
    with admin() as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dsn(name), autocommit=True) as c:
        migrations.migrate(c)
        if with_partman:
            c.execute("CREATE SCHEMA partman")
            c.execute("CREATE EXTENSION pg_partman SCHEMA partman")
        for i in range(n_tables):
            t = sql.Identifier(table_name(i))
            c.execute(
                sql.SQL(
                    "CREATE TABLE {} (id uuid NOT NULL DEFAULT gen_random_uuid(), ts timestamptz NOT NULL,"
                    " event_type text NOT NULL CHECK (event_type <> ''), session_id uuid, payload jsonb,"
                    " PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)"
                ).format(t)
            )
            c.execute(sql.SQL("CREATE INDEX ON {} (ts)").format(t))
            c.execute(sql.SQL("CREATE INDEX ON {} (event_type, ts)").format(t))
            c.execute(sql.SQL("CREATE INDEX ON {} (session_id) WHERE session_id IS NOT NULL").format(t))
    return name


def setup_plain(db: str, n_tables: int) -> None:
    """DEFAULT + current + next month partitions, as the migration would leave them."""
    with psycopg.connect(dsn(db), autocommit=True) as c:
        for i in range(n_tables):
            t = table_name(i)
            c.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
                    sql.Identifier(t + "_default"), sql.Identifier(t)
                )
            )
            for m in (0, 1):
                c.execute(partition_of(t, m))


def partition_of(t: str, m: int) -> sql.Composed:
    return sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
        sql.Identifier(intervals.partition_name(t, month(m))),
        sql.Identifier(t),
        sql.Literal(month(m)),
        sql.Literal(month(m + 1)),
    )


def policy(n_tables: int | range | list[int], premake: int) -> PartitionsPolicy:
    """Tables ``0 .. n_tables - 1`` (or the given indexes), premake ``premake``, no retention."""
    which = range(n_tables) if isinstance(n_tables, int) else n_tables
    tables: dict[str, Any] = {table_name(i): {"premake": premake, "retention": "none"} for i in which}
    tables.update({"learning_events": {"enabled": False}, "system_performance_metrics": {"enabled": False}})
    return PartitionsPolicy.model_validate({"tables": tables})


def count_partitions(db: str) -> int:
    """Partitions (DEFAULT included) of every bench table."""
    return sum(n for n, _ in partitions_per_table(db).values())


def partitions_per_table(db: str) -> dict[str, tuple[int, str]]:
    """Per bench table: its partitions (DEFAULT included) and its highest upper bound (as text)."""
    with psycopg.connect(dsn(db), autocommit=True) as c:
        rows = c.execute(
            "SELECT p.relname, count(*), max(pg_get_expr(c.relpartbound, 0))"
            " FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE p.relname LIKE 'bench\\_t%' AND c.relkind = 'r'"
            " GROUP BY 1"
        ).fetchall()
    return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
