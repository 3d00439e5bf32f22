"""Where pg_cron lives and what its jobs do: shared by the pg_cron takeover job (``flows.cron``) and
the health probe that reports failed runs of the pg_cron jobs still scheduled during a takeover."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import conninfo

from flows.core import db
from flows.core.db import load_sql
from flows.core.policy.settings import DatabasePolicy

Conn = psycopg.Connection[tuple[Any, ...]]

# pgtender job -> what a pg_cron command doing its work looks like. First match wins: retention
# before partitions (dropping old partitions is retention), views before the rest; upkeep is a
# command that is itself a VACUUM, ANALYZE or REINDEX statement (after a DELETE or a REFRESH it
# belongs to the job that does that), before partitions (a table may be called *_partitioned).
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("views", re.compile(r"refresh\s+materialized\s+view|refresh_\w*views?\b", re.IGNORECASE)),
    (
        "retention",
        re.compile(
            r"clean_?up|purge|retention|archiv|drop_old|drop\s+table|detach\s+partition|delete\s+from",
            re.IGNORECASE,
        ),
    ),
    ("upkeep", re.compile(r"(^|;)\s*(vacuum|analy[sz]e|reindex)\b", re.IGNORECASE)),
    ("partitions", re.compile(r"partition|partman\.run_maintenance", re.IGNORECASE)),
    ("quality", re.compile(r"quality|validate_data|data_check", re.IGNORECASE)),
    ("health", re.compile(r"health|monitor", re.IGNORECASE)),
)


@dataclass(frozen=True, kw_only=True)
class CronFailure:
    jobid: int
    jobname: str | None
    command: str
    replaced_by: str | None
    return_message: str | None
    start_time: datetime
    end_time: datetime | None


def replacement_for(command: str) -> str | None:
    """The pgtender job whose work a pg_cron command does (by the command's text), or None."""
    for job, pattern in RULES:
        if pattern.search(command):
            return job
    return None


def location(conn: Conn) -> tuple[bool, str | None, str]:
    """(installed here, pg_cron's database or None when pg_cron is not loaded, this database)."""
    row = conn.execute(load_sql("queries/cron/location.sql")).fetchone()
    assert row is not None
    here, cron_db, this_db = bool(row[0]), row[1] or None, str(row[2])
    if here:
        return True, this_db, this_db
    return False, cron_db, this_db


@contextmanager
def cron_connection(
    conn: Conn, dsn: str | None, policy: DatabasePolicy | None = None
) -> Iterator[tuple[Conn | None, str]]:
    """Yield (a connection to the database holding pg_cron's tables or None, the tended database).

    ``conn`` itself when pg_cron is installed here; otherwise a new connection to
    ``cron.database_name`` on the same server (``dsn``, the tended database's, with that database).
    None when pg_cron is not loaded or not installed in its database.
    """
    here, cron_db, this_db = location(conn)
    if here:
        yield conn, this_db
        return
    if cron_db is None or dsn is None:
        yield None, this_db
        return
    other_dsn = conninfo.make_conninfo(dsn, dbname=cron_db)
    with db.connect(other_dsn, policy=policy, application_name="pgtender-cron", autocommit=True) as other:
        installed = other.execute(load_sql("queries/cron/installed.sql"))
        row = installed.fetchone()
        yield (other if row and row[0] else None), this_db


def cron_failures(conn: Conn, since: datetime, dsn: str | None, *, limit: int = 100) -> list[CronFailure]:
    """Failed runs since ``since`` of the pg_cron jobs still scheduled for the tended database.

    For the health flow while a takeover is in progress: ``conn`` is a connection to the tended
    database (pg_cron may live in another database of the server; it is found and read there).
    Empty when pg_cron is not installed.
    """
    with cron_connection(conn, dsn) as (cron_conn, tended):
        if cron_conn is None:
            return []
        rows = cron_conn.execute(
            load_sql("queries/cron/failures.sql"), {"since": since, "database": tended, "limit": limit}
        ).fetchall()
    return [
        CronFailure(
            jobid=int(r[0]),
            jobname=r[1],
            command=str(r[2]),
            replaced_by=replacement_for(str(r[2])),
            return_message=r[4],
            start_time=r[5],
            end_time=r[6],
        )
        for r in rows
    ]
