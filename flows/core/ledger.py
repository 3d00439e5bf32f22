"""The operation ledger (seed: operation context): start, then complete or fail, with counts.

Ledger writes go through their own autocommit connection so that a rolled-back job still leaves
its 'failed' row behind.
"""

from __future__ import annotations

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


@dataclass
class Operation:
    operation_id: UUID
    job: str
    started_at: datetime
    counts: dict[str, Any] = field(default_factory=dict)


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
        },
    ).fetchone()
    assert row is not None
    return Operation(operation_id=row[0], job=job, started_at=row[1])


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
