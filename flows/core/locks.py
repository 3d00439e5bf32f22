"""Advisory locks: one run of a job at a time per database (pg_partman's idiom).

The keys are defined once, in ``sql/queries/locks/``: ``(hashtext('pgtender.job'), hashtext(name))``
where ``name`` is the job, or ``job:day`` for one day's work of a job (quality runs and backfill
items take it). Locks are session-level: hold the connection for the whole run; the work's
commits do not release them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from flows.core.db import load_sql

Conn = psycopg.Connection[tuple[Any, ...]]


def lock_name(job: str, day: object | None = None) -> str:
    """The lock of a job, or of one day's work of a job."""
    return job if day is None else f"{job}:{day}"


def day_key(job: str, day: object) -> str:
    """The lock name of one day's work of a job (quality runs and backfill items take it)."""
    return lock_name(job, day)


def try_locks(conn: Conn, names: Sequence[str]) -> list[bool]:
    """Try every lock in one round trip; True where this session now holds it."""
    rows = conn.execute(load_sql("queries/locks/try.sql"), {"names": list(names)}).fetchall()
    return [bool(r[0]) for r in rows]


def unlock(conn: Conn, names: Sequence[str]) -> None:
    if names and not conn.closed:
        conn.execute(load_sql("queries/locks/unlock.sql"), {"names": list(names)})


def holds(conn: Conn, name: str) -> bool:
    """Whether this session still holds ``name`` (False, not an error, when the session is gone)."""
    try:
        row = conn.execute(load_sql("queries/locks/held.sql"), {"name": name}).fetchone()
    except psycopg.OperationalError:
        return False
    return bool(row and row[0])


@contextmanager
def job_lock(conn: Conn, name: str) -> Iterator[bool]:
    """Yield True when this session now holds ``name``'s lock, False when another session holds it."""
    (acquired,) = try_locks(conn, [name])
    try:
        yield acquired
    finally:
        if acquired:
            unlock(conn, [name])


@contextmanager
def all_locks(conn: Conn, names: Sequence[str], *, wait_seconds: float, poll: float = 0.25) -> Iterator[bool]:
    """Hold every lock of ``names`` (all or none), waiting up to ``wait_seconds`` for them."""
    deadline = time.monotonic() + wait_seconds
    while True:
        got = try_locks(conn, names)
        if all(got):
            try:
                yield True
            finally:
                unlock(conn, names)
            return
        unlock(conn, [n for n, g in zip(names, got, strict=True) if g])
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
