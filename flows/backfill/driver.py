"""A backfill's plan: its items (minus those a previous run of the same request finished), in
chunks, and a chunk's items run one after another on one connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from flows.backfill.items import completed_items, run_item
from flows.backfill.request import FINISHED, RANGE, Item, ItemResult, Request
from flows.core.engine import Phase, ReplayContext, Replays

Conn = psycopg.Connection[tuple[Any, ...]]


def plan(conn: Conn, request: Request) -> tuple[list[Item], dict[Item, tuple[str, str]]]:
    """All items in order, and those a previous run of the same request finished, with their
    recorded (outcome, detail) (empty on force)."""
    items = request.items()
    done = {} if request.force else completed_items(conn, request)
    return items, {i: o for i, o in done.items() if i in set(items) and o[0] in FINISHED}


def chunks(request: Request, items: list[Item], chunk_days: int) -> list[list[Item]]:
    """Items run once before the days alone, then day items ``chunk_days`` days at a time, then
    those run once after them."""
    first = [i for i in items if i.day == RANGE and request.phase(i.job) is Phase.BEFORE]
    last = [i for i in items if i.day == RANGE and request.phase(i.job) is Phase.AFTER]
    days = sorted({i.day for i in items if i.day != RANGE})
    out: list[list[Item]] = [first] if first else []
    for n in range(0, len(days), chunk_days):
        window = set(days[n : n + chunk_days])
        out.append([i for i in items if i.day in window])
    if last:
        out.append(last)
    return out


def run_chunk(
    conn: Conn,
    request: Request,
    items: list[Item],
    ctx: ReplayContext,
    *,
    replays: dict[str, Replays],
    on_item: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    results = []
    for item in items:
        result = run_item(conn, request, item, ctx, replays)
        results.append(result)
        if on_item is not None:
            on_item(result)
    return results
