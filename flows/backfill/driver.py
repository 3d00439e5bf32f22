"""The plain backfill driver (no Prefect): the plan, chunks of items, progress listeners."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from flows.backfill.items import (
    completed_items,
    run_item,
)
from flows.backfill.request import (
    FINISHED,
    RANGE,
    RANGE_FIRST,
    RANGE_LAST,
    Item,
    ItemResult,
    Request,
)
from flows.backfill.summary import (
    carried_forward,
    summarize,
)
from flows.core import clock, db, settings
from flows.core.errors import ConfigError
from flows.core.replay import ReplayContext

Conn = psycopg.Connection[tuple[Any, ...]]

# ---------------------------------------------------------------- plain driver (no Prefect)

ProgressListener = Callable[[ItemResult, int, int], None]
_listeners: list[ProgressListener] = []


@contextmanager
def progress_listener(callback: ProgressListener) -> Iterator[None]:
    """Call ``callback(result, finished, total)`` after every item run in this process (CLI bar)."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def _emit(result: ItemResult, finished: int, total: int) -> None:
    for callback in list(_listeners):
        callback(result, finished, total)


def plan(conn: Conn, request: Request) -> tuple[list[Item], dict[Item, tuple[str, str]]]:
    """All items in order, and those a previous run of the same request finished, with their
    recorded (outcome, detail) (empty on force)."""
    items = request.items()
    done = {} if request.force else completed_items(conn, request)
    return items, {i: o for i, o in done.items() if i in set(items) and o[0] in FINISHED}


def chunks(items: list[Item], chunk_days: int) -> list[list[Item]]:
    """Range-first items alone, then day items ``chunk_days`` days at a time, then range-last ones."""
    first = [i for i in items if i.day == RANGE and i.job in RANGE_FIRST]
    last = [i for i in items if i.day == RANGE and i.job in RANGE_LAST]
    days = sorted({i.day for i in items if i.day != RANGE})
    out: list[list[Item]] = [first] if first else []
    for n in range(0, len(days), chunk_days):
        window = set(days[n : n + chunk_days])
        out.append([i for i in items if i.day in window])
    if last:
        out.append(last)
    return out


def run_chunk(
    conn: Conn, request: Request, items: list[Item], ctx: ReplayContext, *, finished: int = 0, total: int = 0
) -> list[ItemResult]:
    results = []
    for item in items:
        result = run_item(conn, request, item, ctx)
        results.append(result)
        _emit(result, finished + len(results), total)
    return results


def backfill(
    conn: Conn,
    request: Request,
    *,
    policy: settings.Policy,
    now: datetime | None = None,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
) -> dict[str, Any]:
    """The whole backfill without Prefect (one connection, plain calls). Returns the summary."""
    if db.is_replica(conn):
        raise ConfigError("this server is a replica: backfill writes results and must run on the primary")
    ctx = ReplayContext(
        policy=policy,
        now=now or clock.db_now(conn),
        flow_run_id=flow_run_id,
        operation_id=operation_id,
        days=(request.start, request.end),
    )
    items, done = plan(conn, request)
    outcomes = carried_forward(done)
    todo = [i for i in items if i not in done]
    finished = len(done)
    for chunk in chunks(todo, policy.backfill.chunk_days):
        for result in run_chunk(conn, request, chunk, ctx, finished=finished, total=len(items)):
            outcomes[Item(result.job, result.day)] = result
        finished += len(chunk)
    return summarize(request, {i: outcomes[i] for i in items})
