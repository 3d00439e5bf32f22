"""Rebuilding one index with ``REINDEX INDEX CONCURRENTLY`` (or dropping a leftover copy with
``DROP INDEX CONCURRENTLY``), never stalling the application's writers and never outside the window.

- Neither statement blocks inserts, updates or deletes: they take SHARE UPDATE EXCLUSIVE on the
  table and wait for older transactions instead of locking them out. Every wait is bounded by
  ``lock_timeout``; a try that timed out is retried after a randomised, growing pause
  (``flows.core.ddl.Backoff``), ``attempts`` times in all. They cannot run in a transaction, so the
  timeouts are set for the session and reset afterwards.
- The statement timeout is the time left in the window (or ``rebuild_statement_timeout_ms`` when
  shorter): a rebuild still running when the window closes is cancelled. A rebuild is not started
  with less than a second of window left.
- A REINDEX CONCURRENTLY that fails half way (lock timeout, cancel, a duplicate key of a unique
  index) leaves an invalid copy ``<index>_ccnew`` behind; it is dropped (``DROP INDEX
  CONCURRENTLY``, the documented recovery) before the next try. The index itself is untouched by a
  failure: still valid when it was, still invalid when it was.
- The rebuild's WAL is compressed (``rebuild_wal_compression``, zstd by default; pglz where the
  server was built without the method) when the role may set ``wal_compression``: an index build
  logs every page of the new index as a full-page image, and each writer's commit has to flush what
  was logged before it. zstd writes the least and, slower than lz4, spreads it over a slightly
  longer rebuild (``bench/upkeep.py`` measures the writers' p95 with each); standbys receive less too.
- One index at a time; the caller checks the lock of the run between indexes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from flows.core import clock
from flows.core.db import load_sql
from flows.core.ddl import RETRYABLE, Backoff
from flows.core.policy.upkeep import UpkeepPolicy

Conn = psycopg.Connection[tuple[Any, ...]]
MIN_WINDOW = timedelta(seconds=1)


@dataclass(kw_only=True)
class Rebuilt:
    index: str
    table: str
    kind: str  # bloated | invalid | leftover
    status: str  # rebuilt | dropped | failed | deferred
    bytes_before: int
    bytes_after: int | None = None
    attempts: int = 0
    duration_ms: float = 0.0
    error: str | None = None
    leftovers: list[str] = field(default_factory=list)  # copies that could not be dropped (yet)
    wal_compression: str | None = None  # the method set for the rebuild; None: the server's setting


def _state(conn: Conn, schema: str, index: str) -> tuple[bool, int, int] | None:
    row = conn.execute(
        load_sql("queries/upkeep/index_state.sql"), {"schema": schema, "index": index}
    ).fetchone()
    return None if row is None else (bool(row[0]), int(row[1]), int(row[2]))


def _session(conn: Conn, name: str, value: str) -> None:
    conn.execute(load_sql("queries/upkeep/set_session.sql"), {"name": name, "value": value})


def _compress_wal(conn: Conn, policy: UpkeepPolicy, log: Any) -> str | None:
    """``wal_compression`` for the rebuild's session: the policy's method, or pglz (built into every
    server) when this server was built without it; None when left to the server (by the policy, or
    for want of the privilege)."""
    method = policy.rebuild_wal_compression
    if method == "server":
        return None
    try:
        _session(conn, "wal_compression", method)
    except psycopg.errors.InsufficientPrivilege as exc:
        log.info("rebuild WAL compression left to the server", method=method, reason=type(exc).__name__)
        return None
    except psycopg.errors.InvalidParameterValue as exc:
        log.info("rebuild WAL compression falls back to pglz", method=method, reason=type(exc).__name__)
        _session(conn, "wal_compression", "pglz")
        return "pglz"
    return method


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or type(exc).__name__}"


def drop_leftovers(conn: Conn, schema: str, index: str, table_oid: int, log: Any) -> list[str]:
    """Drop the invalid ``<index>_ccnew``/``_ccold`` copies on ``table_oid``; the names not dropped
    (their DROP timed out waiting for a lock: the next try, or the next run, drops them)."""
    names = [
        str(r[0])
        for r in conn.execute(
            load_sql("queries/upkeep/leftovers.sql"), {"table_oid": table_oid, "index": index}
        ).fetchall()
    ]
    left = []
    for name in names:
        try:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name)))
            log.info("dropped the invalid copy a failed rebuild left", index=name)
        except (
            psycopg.errors.LockNotAvailable,
            psycopg.errors.DeadlockDetected,
            psycopg.errors.QueryCanceled,
        ) as exc:
            log.warning("invalid copy not dropped yet", index=name, error=type(exc).__name__)
            left.append(name)
    return left


def _timeout_ms(policy: UpkeepPolicy, deadline: datetime | None, now: datetime) -> int | None:
    """The statement timeout of the next try (None: the window has closed, or nearly)."""
    cap = policy.rebuild_statement_timeout_ms
    if deadline is None:
        return cap
    left = deadline - now
    if left < MIN_WINDOW:
        return None
    return max(1, min(cap, int(left.total_seconds() * 1000)))


@dataclass(frozen=True, kw_only=True)
class _Target:
    schema: str
    index: str
    kind: str
    table_oid: int

    def statement(self) -> sql.Composed:
        verb = (
            "DROP INDEX CONCURRENTLY IF EXISTS {}"
            if self.kind == "leftover"
            else "REINDEX INDEX CONCURRENTLY {}"
        )
        return sql.SQL(verb).format(sql.Identifier(self.schema, self.index))

    def clean_up(self, conn: Conn, log: Any) -> list[str]:
        if self.kind == "leftover":
            return []
        return drop_leftovers(conn, self.schema, self.index, self.table_oid, log)


def _tries(  # noqa: PLR0917 - the index, its policy and where the tries stop
    conn: Conn,
    target: _Target,
    result: Rebuilt,
    policy: UpkeepPolicy,
    deadline: datetime | None,
    log: Any,
    sleep: Callable[[float], None],
) -> None:
    """Up to ``attempts`` tries: lock conflicts retried after a pause, anything else final."""
    backoff = Backoff(policy.backoff_base_ms, policy.backoff_max_ms)
    for attempt in range(1, policy.attempts + 1):
        timeout = _timeout_ms(policy, deadline, clock.db_now(conn))
        if timeout is None:
            result.status, result.error = "deferred", "the window closed before the rebuild could start"
            return
        _session(conn, "statement_timeout", f"{timeout}ms")
        result.attempts = attempt
        try:
            conn.execute(target.statement())
        except RETRYABLE as exc:
            result.error = _one_line(exc)
            result.leftovers = target.clean_up(conn, log)
            if attempt < policy.attempts:
                pause = backoff.delay_s(attempt)
                log.warning(
                    "lock busy, will retry", index=target.index, attempt=attempt, pause_s=round(pause, 3)
                )
                sleep(pause)
            continue
        except psycopg.Error as exc:  # cancelled at the window's end, a duplicate key, ...
            result.error = _one_line(exc)
            result.leftovers = target.clean_up(conn, log)
            return
        result.status, result.error = ("dropped" if target.kind == "leftover" else "rebuilt"), None
        return


def rebuild(
    conn: Conn,
    index: str,
    table: str,
    kind: str,
    *,
    schema: str,
    policy: UpkeepPolicy,
    deadline: datetime | None,
    log: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> Rebuilt:
    """Rebuild (``kind`` bloated or invalid) or drop (``leftover``) one index, before ``deadline``
    (the window's end; None: no window). ``conn``: autocommit; its session settings come back."""
    result = Rebuilt(index=index, table=table, kind=kind, status="failed", bytes_before=0)
    state = _state(conn, schema, index)
    if state is None:
        result.error = "the index no longer exists"
        return result
    result.bytes_before = state[1]
    target = _Target(schema=schema, index=index, kind=kind, table_oid=state[2])
    started = time.perf_counter()
    try:
        _session(conn, "lock_timeout", f"{policy.lock_timeout_ms}ms")
        _session(conn, "max_parallel_maintenance_workers", str(policy.rebuild_parallel_workers))
        result.wal_compression = _compress_wal(conn, policy, log)
        _tries(conn, target, result, policy, deadline, log, sleep)
    finally:
        conn.execute(load_sql("queries/upkeep/reset_session.sql"))
        if result.wal_compression is not None:
            conn.execute(load_sql("queries/upkeep/reset_wal_compression.sql"))
    result.duration_ms = (time.perf_counter() - started) * 1000.0
    if result.status == "rebuilt":
        after = _state(conn, schema, index)
        result.bytes_after = after[1] if after else None
        if after is None or not after[0]:  # pragma: no cover - REINDEX succeeded: valid by definition
            result.status, result.error = "failed", "the index is not valid after its rebuild"
    log.info(f"index {result.status}", index=index, kind=kind, attempts=result.attempts, error=result.error)
    return result
