"""The week's backfill requests, one line each: one request is one run (its per-day items are parts of
it), and a request refused as bad input is shown as rejected, with why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from flows.core.db import load_sql
from flows.report.week import Week

Conn = psycopg.Connection[tuple[Any, ...]]
OUTCOMES = ("done", "problems", "busy", "error")  # a backfill run's counts per item outcome
SHOWN = {
    "completed": "succeeded",
    "problems": "found problems",
    "failed": "failed",
    "rejected": "rejected",
    "skipped": "skipped",
    "abandoned": "abandoned",
    "started": "running",
}


@dataclass(frozen=True)
class BackfillRequest:
    started_at: datetime  # in the report's time zone
    status: str  # the ledger's
    days: str  # "2026-03-02 .. 2026-03-04 (3 days)", or the dates as given when they do not parse
    jobs: str
    detail: str  # the items' outcomes, or why it was refused / failed

    @property
    def outcome(self) -> str:
        return SHOWN.get(self.status, self.status)


def _days(params: dict[str, Any]) -> str:
    start, end = params.get("start"), params.get("end")
    try:
        first, last = date.fromisoformat(str(start)), date.fromisoformat(str(end))
    except ValueError:
        return f"{start} .. {end}"
    count = (last - first).days + 1
    if count < 1:  # refused: start after end
        return f"{first} .. {last}"
    return f"{first} .. {last} ({count} day{'s' if count != 1 else ''})"


def _jobs(params: dict[str, Any]) -> str:
    jobs = params.get("jobs")
    if jobs is None:
        return "quality, capacity (default)"
    return ", ".join(str(j) for j in jobs) if isinstance(jobs, list) else str(jobs)


def _detail(status: str, counts: dict[str, Any], error: str | None) -> str:
    if status in ("rejected", "failed", "skipped", "abandoned") or (status == "problems" and error):
        return " ".join((error or "").split())
    items = counts.get("items")
    if items is None:
        return ""
    by = ", ".join(f"{k} {counts[k]}" for k in OUTCOMES if counts.get(k))
    return f"{items} item(s)" + (f": {by}" if by else "")


def backfill_requests(conn: Conn, week: Week, *, now: datetime) -> list[BackfillRequest]:
    """Every backfill request of the week up to ``now``, oldest first."""
    rows = conn.execute(
        load_sql("queries/report/backfills.sql"), {"start": week.start, "end": week.end, "now": now}
    ).fetchall()
    tz = ZoneInfo(week.tz)
    return [
        BackfillRequest(
            started_at=started_at.astimezone(tz),
            status=str(status),
            days=_days(params),
            jobs=_jobs(params),
            detail=_detail(str(status), counts, error),
        )
        for started_at, status, params, counts, error in rows
    ]
