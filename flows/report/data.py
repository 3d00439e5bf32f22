"""What the report counts: pass rates, failing checks, job runs and lateness, capacity history."""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from flows.core.db import load_sql
from flows.core.policy import settings
from flows.core.schedules import Schedule
from flows.report.backfills import BackfillRequest, backfill_requests
from flows.report.week import Week

Conn = psycopg.Connection[tuple[Any, ...]]
GROWTH_TABLES = 6  # tables drawn in the growth chart (the largest)
SIZE_HISTORY_DAYS = 56
SAMPLE_CHARS = 300


# ---------------------------------------------------------------- data


@dataclass
class SuiteRate:
    suite: str
    passed: int = 0
    warning: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0

    @property
    def evaluated(self) -> int:
        return self.passed + self.warning + self.failed + self.error

    @property
    def rate(self) -> float | None:
        return None if self.evaluated == 0 else 100.0 * self.passed / self.evaluated

    def add(self, other: SuiteRate) -> None:
        self.passed += other.passed
        self.warning += other.warning
        self.failed += other.failed
        self.error += other.error
        self.skipped += other.skipped


@dataclass
class JobStats:
    job: str
    schedule: str | None
    runs: int = 0
    completed: int = 0
    problems: int = 0  # ran to the end and found problems (failed checks, failed views)
    failed: int = 0
    skipped: int = 0
    abandoned: int = 0  # died without finishing (found dead, or its session is gone)
    rejected: int = 0  # refused as bad input before it ran (a backfill of future days, ...)
    running: int = 0
    expected: int | None = None  # schedule firings in the week (up to now)
    late: int | None = None  # firings with no run started within the tolerance
    counted_from: datetime | None = None  # lateness counts from here (the job's first ledger entry)


@dataclass
class ReportData:
    week: Week
    previous: Week
    generated_at: datetime
    rates: dict[str, SuiteRate]
    previous_rates: dict[str, SuiteRate]
    daily_scores: list[dict[str, Any]]
    failing: list[dict[str, Any]]
    failing_total: int
    health_alerts: list[dict[str, Any]]
    jobs: list[JobStats]
    size_history: dict[str, list[tuple[date, float]]]
    projections: list[dict[str, Any]]
    threshold: float | None = None
    images: dict[str, str] = field(default_factory=dict)
    backfills: list[BackfillRequest] = field(default_factory=list)  # the week's requests, one a run

    @property
    def rejected(self) -> int:
        """Runs refused as bad input (the jobs table shows the column only when there are some)."""
        return sum(j.rejected for j in self.jobs)

    @property
    def generated_local(self) -> datetime:
        """When the report was generated, in the report's time zone (as its alerts and runs)."""
        return self.generated_at.astimezone(ZoneInfo(self.week.tz))

    @property
    def projected(self) -> bool:
        """Whether a table of the growth chart has a fitted growth (drawn dashed)."""
        return any(p["resource"] in self.size_history and "growth_per_day" in p for p in self.projections)

    @property
    def overall(self) -> SuiteRate:
        return _total(self.rates)

    @property
    def previous_overall(self) -> SuiteRate:
        return _total(self.previous_rates)

    @property
    def change(self) -> float | None:
        now, before = self.overall.rate, self.previous_overall.rate
        return None if now is None or before is None else now - before

    @property
    def validated_days(self) -> list[date]:
        """The week's UTC days with at least one suite evaluated (not only skipped)."""
        return sorted({r["day"] for r in self.daily_scores if r["status"] != "skipped"})

    @property
    def coverage(self) -> str:
        """``validated 1 of 7 days (Tue 01)``: how much of the week the pass rate stands on."""
        days = self.validated_days
        total = len(self.week.days)
        if len(days) == total:
            return f"validated {total} of {total} days"
        shown = ", ".join(d.strftime("%a %d") for d in days) if days else "none"
        return f"validated {len(days)} of {total} days ({shown})"

    @property
    def suites(self) -> list[str]:
        return sorted(set(self.rates) | set(self.previous_rates))


def _total(rates: Mapping[str, SuiteRate]) -> SuiteRate:
    total = SuiteRate("all suites")
    for rate in rates.values():
        total.add(rate)
    return total


def quality_rates(conn: Conn, start: datetime, end: datetime) -> dict[str, SuiteRate]:
    rows = conn.execute(
        load_sql("queries/report/quality_counts.sql"), {"start": start, "end": end}
    ).fetchall()
    return {r[0]: SuiteRate(r[0], *(int(v) for v in r[1:6])) for r in rows}


def _sample_text(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def failing_checks(conn: Conn, week: Week, limit: int) -> tuple[list[dict[str, Any]], int]:
    rows = conn.execute(
        load_sql("queries/report/failing_checks.sql"),
        {"start": week.utc_start, "end": week.utc_end, "limit": limit},
    ).fetchall()
    out = [
        {
            "day": r[0],
            "suite": r[1],
            "check": r[2],
            "target": r[3],
            "status": r[4],
            "unexpected_count": r[5],
            "unexpected_percent": r[6],
            "sample": _sample_text(r[7]),
            "expected": _sample_text(r[8]),
            "error": r[9] or "",
        }
        for r in rows
    ]
    return out, int(rows[0][10]) if rows else 0


def late_runs(
    starts: list[datetime], cron: str, tz: str, *, start: datetime, end: datetime, now: datetime
) -> tuple[int, int]:
    """(expected firings, late firings) of ``cron`` in [start, min(end, now - tolerance)).

    A firing is late when no run started between one minute before it and the tolerance after it
    (min(half the schedule's period, 30 minutes)).
    """
    schedule = Schedule(cron, tz)
    tolerance = min(schedule.period(start) / 2, timedelta(minutes=30))
    until = min(end, now - tolerance)
    ordered = sorted(starts)
    expected = late = 0
    for fire in schedule.fires_between(start, until):
        expected += 1
        i = bisect.bisect_left(ordered, fire - timedelta(minutes=1))
        if i >= len(ordered) or ordered[i] > fire + tolerance:
            late += 1
    return expected, late


def first_runs(conn: Conn, end: datetime) -> dict[str, datetime]:
    """job -> its first ledger entry before ``end`` (when pgtender started running it here)."""
    rows = conn.execute(load_sql("queries/report/first_runs.sql"), {"end": end}).fetchall()
    return {str(job): first for job, first in rows}


def job_stats(
    conn: Conn,
    week: Week,
    schedules: Mapping[str, tuple[str, str]],
    *,
    now: datetime,
    exclude: UUID | None = None,
) -> list[JobStats]:
    """Runs per job and status up to ``now`` (``exclude``: the report's own run, still going; a
    backfill request is one run, its per-day items are not); late firings counted only from the
    job's first ledger entry (a job with none: from pgtender's first entry of any job; nothing at
    all: not counted)."""
    rows = conn.execute(
        load_sql("queries/report/ledger_runs.sql"),
        {"start": week.start, "end": week.end, "now": now, "exclude": exclude},
    ).fetchall()
    stats: dict[str, JobStats] = {}
    starts: dict[str, list[datetime]] = defaultdict(list)
    for job, status, started_at, _finished_at in rows:
        s = stats.setdefault(job, JobStats(job, schedules[job][0] if job in schedules else None))
        s.runs += 1
        if status == "started":
            s.running += 1
        else:
            setattr(s, status, getattr(s, status) + 1)
        if status != "rejected":  # a refused request started nothing
            starts[job].append(started_at)
    first = first_runs(conn, week.end)
    installed = min(first.values(), default=None)
    for job, (cron, tz) in schedules.items():
        s = stats.setdefault(job, JobStats(job, cron))
        since = first.get(job, installed)
        if since is None:
            continue  # pgtender never ran here before the week's end: nothing can be late
        s.counted_from = since
        start = max(week.start, since - timedelta(minutes=1))
        if start >= week.end:
            s.expected, s.late = 0, 0
            continue
        s.expected, s.late = late_runs(starts[job], cron, tz, start=start, end=week.end, now=now)
    return [stats[j] for j in sorted(stats)]


def size_history(
    conn: Conn, week: Week, *, now: datetime
) -> tuple[dict[str, list[tuple[date, float]]], list[dict[str, Any]]]:
    """The largest tables' daily sizes up to the week's end (never after ``now``), and every newest
    projection."""
    end = min(week.end, now)
    rows = conn.execute(
        load_sql("queries/report/size_history.sql"),
        {"since": end - timedelta(days=SIZE_HISTORY_DAYS), "end": end},
    ).fetchall()
    history: dict[str, list[tuple[date, float]]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for name, kind, day, value in rows:
        history[name].append((day, float(value)))
        kinds[name] = kind
    tables = sorted((n for n in history if kinds[n] == "table"), key=lambda n: (-history[n][-1][1], n))[
        :GROWTH_TABLES
    ]
    proj_rows = conn.execute(
        load_sql("queries/report/projections.sql"), {"since": end - timedelta(days=30), "end": end}
    ).fetchall()
    by_name: dict[str, dict[str, Any]] = {}
    for metric, kind, name, measured_at, value, threshold, projected_at, horizon in proj_rows:
        entry = by_name.setdefault(name, {"resource": name, "type": kind, "measured_at": measured_at})
        if metric == "total_bytes_growth_per_day":
            entry["growth_per_day"] = float(value)
        else:
            entry.update(
                projected=float(value),
                threshold=threshold,
                reaches_at=projected_at,
                horizon_days=horizon.days if horizon is not None else None,
            )
        if name in history:
            entry["size"] = history[name][-1][1]
    projections = sorted(
        by_name.values(), key=lambda e: (e["type"] != "database", -(e.get("size") or 0.0), e["resource"])
    )[: GROWTH_TABLES + 1]
    return {n: history[n] for n in tables}, projections


def index_findings(conn: Conn, week: Week) -> list[dict[str, Any]]:
    """The unused and duplicate indexes the week's last upkeep run reported (never dropped), for the
    report's index section: kind, index, table, size, and what it duplicates or since when unused."""
    rows = conn.execute(
        load_sql("queries/report/index_findings.sql"), {"start": week.utc_start, "end": week.utc_end}
    ).fetchall()
    out = []
    for check, index, observed, found_on in rows:
        seen = observed or {}
        unused = check == "upkeep.unused_index"
        out.append(
            {
                "kind": "unused" if unused else "duplicate",
                "index": index,
                "table": seen.get("table", ""),
                "bytes": seen.get("bytes"),
                "detail": (
                    f"no scans since {str(seen.get('counted_since', ''))[:10]}"
                    if unused
                    else f"same as {seen.get('duplicate_of', '?')}"
                ),
                "found_on": found_on.date(),
            }
        )
    return out


def gather(
    conn: Conn,
    week: Week,
    policy: settings.Policy,
    schedules: Mapping[str, tuple[str, str]],
    *,
    now: datetime,
    exclude: UUID | None = None,
) -> ReportData:
    """Everything the report shows, as the database says at ``now`` (``exclude``: the report's own
    run); times in the report's time zone."""
    previous = week.previous()
    failing, failing_total = failing_checks(conn, week, policy.report.failing_checks_max)
    scores = conn.execute(
        load_sql("queries/report/daily_scores.sql"), {"start": week.utc_start, "end": week.utc_end}
    ).fetchall()
    alerts = conn.execute(
        load_sql("queries/report/health_alerts.sql"), {"start": week.start, "end": week.end, "now": now}
    ).fetchall()
    history, projections = size_history(conn, week, now=now)
    tz = ZoneInfo(week.tz)
    return ReportData(
        week=week,
        previous=previous,
        generated_at=now,
        rates=quality_rates(conn, week.utc_start, week.utc_end),
        previous_rates=quality_rates(conn, previous.utc_start, previous.utc_end),
        daily_scores=[
            {"day": r[0], "suite": r[1], "score": r[2], "status": r[3], "threshold": r[4]} for r in scores
        ],
        failing=failing,
        failing_total=failing_total,
        health_alerts=[
            {
                "check": r[0],
                "target": r[1],
                "status": r[2],
                "windows": r[3],
                "first": r[4].astimezone(tz),
                "last": r[5].astimezone(tz),
            }
            for r in alerts
        ],
        jobs=job_stats(conn, week, schedules, now=now, exclude=exclude),
        backfills=backfill_requests(conn, week, now=now),
        size_history=history,
        projections=projections,
        threshold=policy.quality.threshold,
    )
