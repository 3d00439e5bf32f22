"""The survey: everything upkeep reads before it acts, each part in its own READ ONLY transaction
under the probe statement timeout and a short lock timeout, timed (the run's database time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from flows.core.db import set_local
from flows.core.policy.upkeep import UpkeepPolicy
from flows.upkeep import indexes, statistics, vacuum, window
from flows.upkeep.scope import Scope, resolve

Conn = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")


@dataclass(kw_only=True)
class Survey:
    now: datetime
    window_open: bool
    closes_at: datetime | None  # when the open window closes
    opens_at: datetime  # now when open, else the next opening
    tables: int
    parents: list[statistics.Parent]
    due: list[statistics.Due]
    stale: list[statistics.StaleTable]
    invalid: list[indexes.InvalidIndex]
    bloat: list[indexes.Bloat]
    unused: list[indexes.UnusedIndex]
    duplicates: list[indexes.DuplicateGroup]
    vacuum: list[vacuum.VacuumState]
    bloat_pct: float  # the threshold the bloat list is judged against
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def bloated(self) -> list[indexes.Bloat]:
        """Indexes over the bloat threshold (that are not invalid: those are rebuilt anyway)."""
        invalid = {i.index for i in self.invalid}
        return [
            b
            for b in self.bloat
            if b.bloat_pct is not None and b.bloat_pct > self.bloat_pct and b.index not in invalid
        ]

    @property
    def db_ms(self) -> float:
        return sum(self.timings_ms.values())


def _read(conn: Conn, policy: UpkeepPolicy, timings: dict[str, float], name: str, fn: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        with conn.transaction():
            set_local(conn, "transaction_read_only", "on")
            set_local(conn, "statement_timeout", f"{policy.probe_statement_timeout_ms}ms")
            set_local(conn, "lock_timeout", f"{policy.lock_timeout_ms}ms")
            return fn()
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - started) * 1000.0


def survey(conn: Conn, policy: UpkeepPolicy, *, now: datetime, scope: Scope | None = None) -> Survey:
    """Read everything upkeep decides on, at ``now`` (the run's database clock)."""
    t = policy.thresholds
    timings: dict[str, float] = {}

    def read(name: str, fn: Callable[[], T]) -> T:
        return _read(conn, policy, timings, name, fn)

    chosen = scope if scope is not None else read("scope", lambda: resolve(conn, policy))
    found, due = read("parents", lambda: statistics.due(conn, chosen, t.analyze_change_fraction))
    since = read("stats_since", lambda: indexes.stats_since(conn, now))
    return Survey(
        now=now,
        window_open=window.is_open(policy.window, now),
        closes_at=window.closes_at(policy.window, now),
        opens_at=window.next_opening(policy.window, now),
        tables=len(chosen.tables),
        parents=found,
        due=due,
        stale=read("stale", lambda: statistics.stale_tables(conn, chosen, t.analyze_change_fraction)),
        invalid=read("invalid", lambda: indexes.invalid_indexes(conn, chosen)),
        bloat=read("bloat", lambda: indexes.bloat(conn, chosen, t)),
        unused=read("unused", lambda: indexes.unused_indexes(conn, chosen, t.unused_days, now)),
        duplicates=read("duplicates", lambda: indexes.duplicate_indexes(conn, chosen)),
        vacuum=read("vacuum", lambda: vacuum.vacuum_health(conn, chosen, t, now=now, since=since)),
        bloat_pct=t.bloat_pct,
        timings_ms=timings,
    )
