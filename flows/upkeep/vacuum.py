"""Vacuum health: is autovacuum keeping up with each table's dead tuples?

A table with at least ``dead_tuples_min`` dead tuples is behind when they are more than
``dead_tuple_ratio`` of its tuples, or when autovacuum's own trigger says a vacuum is due and none
ran for ``vacuum_age_hours`` (a table never vacuumed counts from when the statistics began). Upkeep
never vacuums (autovacuum does, or the operator): it measures, records and pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from flows.core.db import load_sql
from flows.core.policy.upkeep import UpkeepThresholds
from flows.upkeep.scope import Scope

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class VacuumState:
    table: str
    live: int
    dead: int
    last_vacuum: datetime | None
    due: bool  # autovacuum's threshold + scale factor x rows is passed
    hours_since: float  # since the last (auto)vacuum, or since the statistics began
    behind: bool
    reason: str

    @property
    def dead_ratio(self) -> float:
        total = self.live + self.dead
        return self.dead / total if total else 0.0


def judge(
    live: int, dead: int, due: bool, hours_since: float, thresholds: UpkeepThresholds
) -> tuple[bool, str]:
    """(behind?, why) for one table's counts."""
    total = live + dead
    ratio = dead / total if total else 0.0
    if dead >= thresholds.dead_tuples_min and ratio > thresholds.dead_tuple_ratio:
        return True, f"dead tuples are {ratio:.0%} of the table (limit {thresholds.dead_tuple_ratio:.0%})"
    if dead >= thresholds.dead_tuples_min and due and hours_since > thresholds.vacuum_age_hours:
        return True, (
            f"a vacuum is due and none ran for {hours_since:.0f} h (limit {thresholds.vacuum_age_hours:g} h)"
        )
    return False, ""


def vacuum_health(
    conn: Conn, scope: Scope, thresholds: UpkeepThresholds, *, now: datetime, since: datetime
) -> list[VacuumState]:
    """Every table of the scope with at least ``dead_tuples_min`` dead tuples, judged."""
    if not scope.tables:
        return []
    rows = conn.execute(
        load_sql("queries/upkeep/vacuum.sql"),
        {"tables": scope.oids, "min_dead": thresholds.dead_tuples_min},
    ).fetchall()
    out = []
    for table, live, dead, last_vacuum, due in rows:
        hours = (now - (last_vacuum or since)).total_seconds() / 3600.0
        behind, reason = judge(int(live), int(dead), bool(due), hours, thresholds)
        out.append(
            VacuumState(
                table=str(table),
                live=int(live),
                dead=int(dead),
                last_vacuum=last_vacuum,
                due=bool(due),
                hours_since=max(hours, 0.0),
                behind=behind,
                reason=reason,
            )
        )
    return out
