"""Lock-safe DDL: one transaction per unit of work, ``lock_timeout`` per try, backoff with jitter.

A DDL statement that waits for a lock also makes every later writer wait behind it (the lock
queue is FIFO). ``lock_timeout`` bounds that wait; on timeout the transaction rolls back (nothing
half-done) and is tried again after a randomised, growing pause, so maintenance yields to the
application instead of stalling it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg.errors

from flows.core.db import set_local
from flows.core.errors import DataProblem, InfrastructureError
from flows.core.policy.partitions import DdlRetry

Conn = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")

# Worth another try after a pause: somebody else held the lock, or we were chosen as the victim.
RETRYABLE: tuple[type[BaseException], ...] = (
    psycopg.errors.LockNotAvailable,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)


class LockRetriesExhausted(InfrastructureError):
    """Every try of a DDL transaction timed out waiting for its locks; that transaction changed nothing."""


class RowCountMismatch(DataProblem):
    """A destructive step's before/after counts disagree; its transaction was rolled back."""


@dataclass(frozen=True)
class Backoff:
    base_ms: int
    max_ms: int

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Pause after failed try ``attempt`` (1-based): 'equal jitter' on a doubling cap."""
        cap = min(self.max_ms, self.base_ms * (2 ** (attempt - 1)))
        return float(cap / 2 + rand() * cap / 2) / 1000.0


def run_locked(
    conn: Conn,
    work: Callable[[Conn], T],
    *,
    retry: DdlRetry,
    what: str,
    log: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``work(conn)`` in one transaction under ``lock_timeout``, retrying lock conflicts.

    ``conn`` must be in autocommit mode; ``work`` must be safe to run again from scratch (it is,
    because every failed try rolled back completely).
    """
    if not conn.autocommit:
        raise ValueError("run_locked needs an autocommit connection")
    backoff = Backoff(retry.backoff_base_ms, retry.backoff_max_ms)
    timeout = f"{retry.lock_timeout_ms}ms"
    for attempt in range(1, retry.attempts + 1):
        try:
            with conn.transaction():
                set_local(conn, "lock_timeout", timeout)
                return work(conn)
        except RETRYABLE as exc:
            kind = type(exc).__name__
            if attempt >= retry.attempts:
                log.error("lock retries exhausted", what=what, attempts=attempt, error=kind)
                raise LockRetriesExhausted(
                    f"{what}: gave up after {attempt} tries of {retry.lock_timeout_ms} ms "
                    f"({kind}); that step changed nothing"
                ) from exc
            pause = backoff.delay_s(attempt)
            log.warning(
                "lock busy, will retry", what=what, attempt=attempt, error=kind, pause_s=round(pause, 3)
            )
            sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover - attempts >= 1


def expect_equal(what: str, expected: int, actual: int) -> None:
    """Raise inside the transaction (so it rolls back) when two counts disagree."""
    if expected != actual:
        raise RowCountMismatch(f"{what}: expected {expected} rows, found {actual}; rolled back")
