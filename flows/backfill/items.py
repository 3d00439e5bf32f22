"""One backfill item (a job for a day, or once for the range): locks, the job's replay, its ledger row."""

from __future__ import annotations

import socket
import time
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from flows.backfill.request import (
    BUSY,
    DONE,
    ERROR,
    JOB,
    PROBLEMS,
    RANGE,
    Item,
    ItemResult,
    Request,
)
from flows.core import locks
from flows.core.db import load_sql
from flows.core.engine import ReplayContext, Replays
from flows.core.errors import ConfigError, DataProblem, InfrastructureError
from flows.core.logs import get_logger
from flows.core.masking import mask_secrets

Conn = psycopg.Connection[tuple[Any, ...]]

# ---------------------------------------------------------------- locks and progress records


def item_locks(item: Item) -> list[str]:
    """The job's own lock (what its scheduled flow takes) and the (job, day) lock."""
    return [locks.lock_name(item.job), locks.lock_name(item.job, item.day)]


def completed_items(conn: Conn, request: Request) -> dict[Item, tuple[str, str]]:
    """Items of this request that a previous run finished, with their recorded (outcome, detail)."""
    rows = conn.execute(load_sql("queries/backfill/done.sql"), {"request": request.key}).fetchall()
    return {Item(str(job), str(day)): (str(outcome), str(detail)) for day, job, outcome, detail in rows}


def finished_since(conn: Conn, request_key: str, since: datetime) -> int:
    row = conn.execute(
        load_sql("queries/backfill/progress.sql"), {"request": request_key, "since": since}
    ).fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------- one item


def _work(
    conn: Conn, item: Item, ctx: ReplayContext, replays: dict[str, Replays]
) -> tuple[str, str, dict[str, Any]] | None:
    """The job's replay for the item; None when another run held the job's lock."""
    if item.job not in replays:
        raise ConfigError(f"unknown backfill job {item.job!r}")
    day = None if item.day == RANGE else date.fromisoformat(item.day)
    out = replays[item.job].fn(conn, day, ctx)
    if out is None:
        return None
    return (PROBLEMS if out.problems else DONE), out.detail, out.counts


def record_item(
    conn: Conn,
    request: Request,
    result: ItemResult,
    ctx: ReplayContext,
    *,
    status: str,
    error: str | None = None,
) -> None:
    """The item's ledger row, written once it ended (one round trip; what a resume reads)."""
    params = {**request.params(), "item": True, "job": result.job, "day": result.day}
    if ctx.operation_id is not None:
        params["parent"] = str(ctx.operation_id)
    counts = {**result.counts, "outcome": result.outcome, "detail": result.detail}
    conn.execute(
        load_sql("queries/backfill/record_item.sql"),
        {
            "status": status,
            "seconds": result.seconds,
            "flow_run_id": ctx.flow_run_id,
            "params": Jsonb(params),
            "counts": Jsonb(counts),
            "error": None if error is None else mask_secrets(error)[:2000],
            "host": socket.gethostname(),
        },
    )


def run_item(
    conn: Conn, request: Request, item: Item, ctx: ReplayContext, replays: dict[str, Replays]
) -> ItemResult:
    """One (job, day): the locks, the job's core, a ledger row. Errors become an 'error' result."""
    started = time.perf_counter()
    wait = ctx.policy.backfill.lock_wait_seconds
    clock = [0.0]  # seconds inside the job's core (the rest of the item is locks and the ledger)

    def work() -> tuple[str, str, dict[str, Any]] | None:
        began = time.perf_counter()
        try:
            return _work(conn, item, ctx, replays)
        finally:
            clock[0] += time.perf_counter() - began

    try:
        with locks.all_locks(conn, item_locks(item), wait_seconds=wait) as got:
            out = work() if got else None
    except (psycopg.Error, InfrastructureError, ConfigError, DataProblem) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        get_logger(job=JOB, item_job=item.job, day=item.day).error("backfill item failed", error=message)
        failed = ItemResult(item.job, item.day, ERROR, message[:300], time.perf_counter() - started)
        record_item(conn, request, failed, ctx, status="failed", error=f"{type(exc).__name__}: {message}")
        return failed
    if out is None:
        reason = f"a {item.job} run held the job lock for more than {wait:g} s"
        get_logger(job=JOB, item_job=item.job, day=item.day).warning("backfill item busy", reason=reason)
        busy = ItemResult(item.job, item.day, BUSY, reason, time.perf_counter() - started)
        record_item(conn, request, busy, ctx, status="skipped", error=reason)
        return busy
    outcome, detail, counts = out
    result = ItemResult(item.job, item.day, outcome, detail, time.perf_counter() - started, counts, clock[0])
    record_item(conn, request, result, ctx, status="completed")
    return result
