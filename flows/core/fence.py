"""Fencing tokens: a run whose advisory lock was taken over writes nothing more.

A run's advisory lock lives in its own session; its work runs on other (pooled) sessions. When the
lock session ends under a run (``pg_terminate_backend``, a network cut) the work sessions go on,
and another run may take the lock meanwhile. So, besides the lock:

- ``take``: the run that gets the lock takes its fence (``pgtender_fences``: a new token from a
  global counter and the run's operation, one row per lock name). Updating the row waits for the
  transactions that hold it FOR SHARE: those still in flight of the run that held the lock before.
  It waits ``GRACE_S`` for them to end, then cancels them (``pg_cancel_backend`` of the sessions
  whose transaction carries that run's tag) and waits again, up to ``LIMIT_S`` in all.
- ``check``: the first statement of every transaction of a run's work locks its fence rows FOR
  SHARE and compares the tokens; another token (or none) raises ``LockLost`` inside the
  transaction, which rolls back: nothing is written by a run that no longer holds its lock.
- ``release``: at the run's end its rows go (only its own: a run fenced off deletes nothing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg
import psycopg.errors

from flows.core.db import load_sql, set_local
from flows.core.errors import InfrastructureError, LockLost

Conn = psycopg.Connection[tuple[Any, ...]]

GRACE_S = 5.0  # how long a run taking over waits for the last one's transaction before cancelling it
LIMIT_S = 60.0  # in all; then the run taking over gives up (nothing changed)
_RETRY_S = 1.0  # after a cancel: each further wait


def tag(operation_id: UUID | str) -> str:
    """The ``application_name`` of a run's work sessions while they are in one of its transactions."""
    return f"pgtender-run {operation_id}"


def take(
    conn: Conn,
    names: Sequence[str],
    operation_id: UUID,
    *,
    log: Any,
    grace_s: float | None = None,
    limit_s: float | None = None,
) -> dict[str, int]:
    """The fences of ``names`` for the run ``operation_id`` (it holds their advisory locks on
    ``conn``, autocommit): lock name -> token. Waits for (then cancels) an earlier run's transaction
    in flight; ``InfrastructureError`` when one still holds a fence after ``limit_s``."""
    limit = LIMIT_S if limit_s is None else limit_s
    deadline = time.monotonic() + limit
    wait = GRACE_S if grace_s is None else grace_s
    while True:
        try:
            with conn.transaction():
                set_local(conn, "lock_timeout", f"{max(1, round(wait * 1000))}ms")
                rows = conn.execute(
                    load_sql("queries/fence/take.sql"),
                    {"names": list(names), "operation_id": operation_id},
                ).fetchall()
            return {str(name): int(token) for name, token in rows}
        except psycopg.errors.LockNotAvailable:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InfrastructureError(
                    f"an earlier run's transaction still holds the fence of {', '.join(names)} after"
                    f" {limit:g} s (cancelled, not ended): this run did nothing"
                ) from None
            cancelled = cancel_holders(conn, names, operation_id)
            log.warning(
                "the run that held this lock before still had a transaction in flight: cancelled it",
                waited_s=round(wait, 3),
                sessions=cancelled,
            )
            wait = min(_RETRY_S, left)


def cancel_holders(conn: Conn, names: Sequence[str], operation_id: UUID) -> list[int]:
    """Cancel the statements in flight of the runs that held ``names``'s fences before; their pids."""
    holders = conn.execute(
        load_sql("queries/fence/holders.sql"), {"names": list(names), "operation_id": operation_id}
    ).fetchall()
    if not holders:
        return []
    rows = conn.execute(
        load_sql("queries/fence/cancel.sql"), {"tags": [tag(h[0]) for h in holders]}
    ).fetchall()
    return [int(r[0]) for r in rows]


def check(conn: Conn, tokens: Mapping[str, int], operation_id: UUID, *, job: str) -> None:
    """In ``conn``'s open transaction, first: the run still holds every fence of ``tokens`` (their
    rows stay locked FOR SHARE until the transaction ends), else ``LockLost``."""
    rows = conn.execute(
        load_sql("queries/fence/check.sql"), {"names": list(tokens), "tag": tag(operation_id)}
    ).fetchall()
    found = {str(name): (int(token), holder) for name, token, holder, _ in rows}
    for name, token in tokens.items():
        now = found.get(name)
        if now is None or now[0] != token:
            by = f"run {now[1]} took it over" if now is not None else "the fence is gone"
            raise LockLost(
                f"{job} lost its advisory lock {name!r} ({by}): stopped before writing; nothing of this"
                " transaction was written"
            )


def release(conn: Conn, names: Sequence[str], operation_id: UUID) -> None:
    """The run ends: its fence rows go (when its session is still there)."""
    if conn.closed:
        return
    conn.execute(load_sql("queries/fence/release.sql"), {"names": list(names), "operation_id": operation_id})


__all__ = ["GRACE_S", "LIMIT_S", "cancel_holders", "check", "release", "tag", "take"]
