"""What a job offers the on-call backfill: its work re-done for one UTC day, or once for a range.

Backfill composes other jobs' work without importing them (no job imports another job): each job
that can be backfilled exposes ``replay(conn, day, ctx)`` and is named here; backfill looks the
function up by name when an item runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg

if TYPE_CHECKING:
    from flows.core.settings import Policy

Conn = psycopg.Connection[tuple[Any, ...]]

# job -> "module:function" of its replay. Day jobs get a date; range jobs get None (once per range).
REPLAYS: dict[str, str] = {
    "partitions": "flows.partitions:replay",
    "quality": "flows.quality:replay",
    "capacity": "flows.capacity:replay",
    "views": "flows.views:replay",
}


@dataclass(frozen=True, kw_only=True)
class ReplayContext:
    """What a replay needs besides the connection (plain values)."""

    policy: Policy
    now: datetime
    flow_run_id: str | None = None
    operation_id: UUID | None = None
    days: tuple[date, date] | None = None  # the backfill's whole range (what rollups recompute)


@dataclass(frozen=True)
class Replayed:
    """The outcome of one replay: ``problems`` when the work ran and found problems."""

    problems: bool
    detail: str
    counts: dict[str, Any] = field(default_factory=dict)


Replay = Callable[[Conn, date | None, ReplayContext], Replayed | None]


def replay_for(job: str) -> Replay:
    """The job's replay function (None from it means: another run holds the job's lock)."""
    module_name, _, attr = REPLAYS[job].partition(":")
    fn: Replay = getattr(importlib.import_module(module_name), attr)
    return fn
