"""Advisory locks: one run of a job at a time per database (pg_partman's idiom)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

Conn = psycopg.Connection[tuple[Any, ...]]

_TRY = "SELECT pg_try_advisory_lock(hashtext('pgtender.job'), hashtext(%s))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext('pgtender.job'), hashtext(%s))"


def day_key(job: str, day: object) -> str:
    """The lock name of one day's work of a job (quality runs and backfill items take it)."""
    return f"{job}:{day}"


@contextmanager
def job_lock(conn: Conn, job: str) -> Iterator[bool]:
    """Yield True when this session now holds the job's lock, False when another run holds it.

    Session-level: hold ``conn`` (autocommit) for the whole run; commits inside do not release it.
    """
    row = conn.execute(_TRY, (job,)).fetchone()
    acquired = bool(row and row[0])
    try:
        yield acquired
    finally:
        if acquired and not conn.closed:
            conn.execute(_UNLOCK, (job,))
