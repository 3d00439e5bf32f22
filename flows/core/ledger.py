"""The operation ledger (seed: operation context): start, then complete or fail, with counts.

Ledger writes go through their own autocommit connection so that a rolled-back job still leaves
its 'failed' row behind. The session that starts a row is its run's proof of life: hold it until
the row is finished. When a run starts, the rows of its job whose session is gone (kill -9, a crash,
an outage) are marked ``abandoned``, with the time they were found as ``finished_at``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from flows.core.db import load_sql
from flows.core.masking import mask_secrets

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class Abandoned:
    """A run found dead by a later run of its job."""

    operation_id: UUID
    started_at: datetime
    flow_run_id: UUID | None
    found_at: datetime
    reason: str


@dataclass(kw_only=True)
class Operation:
    operation_id: UUID
    job: str
    started_at: datetime
    counts: dict[str, Any] = field(default_factory=dict)
    abandoned: list[Abandoned] = field(default_factory=list)  # earlier runs this start found dead


def _require_autocommit(conn: Conn) -> None:
    if not conn.autocommit:
        raise ValueError("the ledger needs an autocommit connection (its rows must survive a rollback)")


def start_operation(
    conn: Conn, job: str, *, params: dict[str, Any] | None = None, flow_run_id: UUID | str | None = None
) -> Operation:
    _require_autocommit(conn)
    row = conn.execute(
        load_sql("queries/ledger/start.sql"),
        {
            "job": job,
            "flow_run_id": str(flow_run_id) if flow_run_id else None,
            "params": Jsonb(params or {}),
            "host": socket.gethostname(),
            "process_id": os.getpid(),
        },
    ).fetchone()
    assert row is not None
    op = Operation(operation_id=row[0], job=job, started_at=row[1])
    op.abandoned = abandon_dead_runs(conn, job, found_by=op.operation_id)
    return op


def abandon_dead_runs(conn: Conn, job: str, *, found_by: UUID) -> list[Abandoned]:
    """Mark ``job``'s open runs whose database session is gone as abandoned (found by ``found_by``)."""
    rows = conn.execute(
        load_sql("queries/ledger/abandon_dead.sql"), {"job": job, "found_by": found_by}
    ).fetchall()
    return [_abandoned(row) for row in rows]


def _abandoned(row: tuple[Any, ...]) -> Abandoned:
    operation_id, started_at, flow_run_id, found_at, reason = row
    return Abandoned(
        operation_id=operation_id,
        started_at=started_at,
        flow_run_id=flow_run_id,
        found_at=found_at,
        reason=reason,
    )


def open_runs(conn: Conn, job: str, *, found_by: UUID) -> list[tuple[UUID, UUID]]:
    """(operation id, flow run id) of ``job``'s other open runs that belong to a flow run."""
    rows = conn.execute(load_sql("queries/ledger/open_runs.sql"), {"job": job, "found_by": found_by})
    return [(r[0], r[1]) for r in rows.fetchall()]


def abandon(conn: Conn, operation_id: UUID, reason: str) -> Abandoned | None:
    """Mark one open run abandoned; None when it was no longer open."""
    _require_autocommit(conn)
    row = conn.execute(
        load_sql("queries/ledger/abandon.sql"),
        {"operation_id": operation_id, "reason": mask_secrets(reason)[:2000]},
    ).fetchone()
    return None if row is None else _abandoned(row)


def _finish(conn: Conn, op: UUID, status: str, counts: dict[str, Any], error: str | None) -> None:
    _require_autocommit(conn)
    row = conn.execute(
        load_sql("queries/ledger/finish.sql"),
        {"operation_id": op, "status": status, "counts": Jsonb(counts), "error": error},
    ).fetchone()
    if row is None:
        raise ValueError(f"operation {op} is not open in the ledger")


def finish_operation(
    conn: Conn,
    operation_id: UUID,
    status: str,
    counts: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Finish an open run with ``status`` (completed | problems | skipped | failed)."""
    _finish(conn, operation_id, status, counts or {}, None if error is None else mask_secrets(error)[:2000])


def complete_operation(conn: Conn, operation_id: UUID, counts: dict[str, Any] | None = None) -> None:
    _finish(conn, operation_id, "completed", counts or {}, None)


def fail_operation(conn: Conn, operation_id: UUID, error: str, counts: dict[str, Any] | None = None) -> None:
    _finish(conn, operation_id, "failed", counts or {}, mask_secrets(error)[:2000])


def skip_operation(conn: Conn, operation_id: UUID, reason: str) -> None:
    _finish(conn, operation_id, "skipped", {}, reason)


@contextmanager
def operation(
    conn: Conn, job: str, *, params: dict[str, Any] | None = None, flow_run_id: UUID | str | None = None
) -> Iterator[Operation]:
    """``with operation(conn, "capacity") as op: op.counts["rows"] = n`` — completes or fails."""
    op = start_operation(conn, job, params=params, flow_run_id=flow_run_id)
    try:
        yield op
    except BaseException as exc:
        fail_operation(conn, op.operation_id, f"{type(exc).__name__}: {exc}", op.counts)
        raise
    complete_operation(conn, op.operation_id, op.counts)


def run_status(conn: Conn, operation_id: UUID) -> str | None:
    """The ledger status of one run (``started`` while it is open); None when the ledger does not
    know it (or the database has no ledger yet)."""
    try:
        row = conn.execute(load_sql("queries/ledger/status.sql"), {"operation_id": operation_id}).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return str(row[0]) if row else None
