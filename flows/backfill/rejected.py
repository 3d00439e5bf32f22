"""A backfill request refused as bad input, kept in the ledger (status 'rejected') so the weekly
report counts it: nothing ran and nothing of the tended data changed, but someone asked.

Recording is best effort: a database that cannot take the row (unreachable, not migrated to 0013)
leaves the rejection as it was, one line and exit 2, never an infrastructure error instead.
"""

from __future__ import annotations

import socket
from datetime import date
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from flows.core.db import load_sql
from flows.core.errors import ConfigError
from flows.core.logs import get_logger
from flows.core.masking import mask_secrets

Conn = psycopg.Connection[tuple[Any, ...]]
REJECTED = "rejected"
NOT_RECORDED = (psycopg.OperationalError, psycopg.errors.CheckViolation, psycopg.errors.UndefinedTable)


def as_given(start: Any, end: Any, jobs: Any, force: bool, source: str) -> dict[str, Any]:
    """The request as it was given (strings: it may not parse), and where it came from."""

    def text(value: Any) -> Any:
        if value is None or isinstance(value, str | bool):
            return value
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, list | tuple):
            return [text(v) for v in value]
        return str(value)

    given = {"start": text(start), "end": text(end), "jobs": text(jobs)}
    return {**given, "force": bool(force), "source": source}


def record(conn: Conn, given: dict[str, Any], error: ConfigError, *, flow_run_id: str | None) -> UUID | None:
    """The rejected request's ledger row; None when the database could not take it."""
    try:
        row = conn.execute(
            load_sql("queries/backfill/record_rejected.sql"),
            {
                "flow_run_id": flow_run_id,
                "params": Jsonb(given),
                "error": mask_secrets(" ".join(str(error).split()))[:2000],
                "host": socket.gethostname(),
            },
        ).fetchone()
    except NOT_RECORDED as exc:
        get_logger(job="backfill").info("rejected request not recorded", reason=type(exc).__name__)
        return None
    return None if row is None else UUID(str(row[0]))
