"""A backfill request: its days, jobs and items, validated before anything is touched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import psycopg

from flows.core import clock, settings
from flows.core.errors import ConfigError

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "backfill"
RANGE_FIRST = ("partitions",)  # once, before the days
DAY_JOBS = ("quality", "capacity")  # per day, in this order
RANGE_LAST = ("views",)  # once, after the days
KNOWN_JOBS = RANGE_FIRST + DAY_JOBS + RANGE_LAST
DEFAULT_JOBS = ("quality", "capacity")
RANGE = "range"  # the `day` of a range job's item


class ItemOutcome(StrEnum):
    """done: ran and found nothing wrong; problems: ran and found problems (failed checks, failed
    view refresh); busy: the job's lock stayed held; error: it raised."""

    DONE = "done"
    PROBLEMS = "problems"
    BUSY = "busy"
    ERROR = "error"


DONE, PROBLEMS, BUSY, ERROR = ItemOutcome.DONE, ItemOutcome.PROBLEMS, ItemOutcome.BUSY, ItemOutcome.ERROR
FINISHED = (DONE, PROBLEMS)  # what a resume does not repeat


# ---------------------------------------------------------------- the request


@dataclass(frozen=True)
class Request:
    start: date
    end: date
    jobs: tuple[str, ...]  # in execution order
    force: bool = False

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def key(self) -> str:
        """The identity of 'this backfill' for resuming: the range and the jobs (not --force)."""
        raw = json.dumps([self.start.isoformat(), self.end.isoformat(), list(self.jobs)])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def params(self) -> dict[str, Any]:
        return {
            "request": self.key,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "jobs": list(self.jobs),
            "force": self.force,
        }

    def items(self) -> list[Item]:
        out = [Item(job, RANGE) for job in RANGE_FIRST if job in self.jobs]
        out += [Item(job, d.isoformat()) for d in self.days for job in DAY_JOBS if job in self.jobs]
        out += [Item(job, RANGE) for job in RANGE_LAST if job in self.jobs]
        return out


@dataclass(frozen=True)
class Item:
    job: str
    day: str  # YYYY-MM-DD, or "range"


@dataclass
class ItemResult:
    job: str
    day: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0  # the whole item: ledger rows, locks, the work
    counts: dict[str, Any] = field(default_factory=dict)
    work_seconds: float = 0.0  # the job's core alone (bench/backfill.py: overhead = the rest)
    earlier: bool = False  # not re-run: the outcome a previous run of the same request recorded

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "day": self.day,
            "outcome": self.outcome,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
            "counts": self.counts,
            "work_seconds": round(self.work_seconds, 4),
            "earlier": self.earlier,
        }


def parse_jobs(jobs: Sequence[str] | str | None) -> tuple[str, ...]:
    """``["quality", "capacity"]`` or ``"quality,capacity"``; None: the default jobs."""
    if jobs is None:
        return DEFAULT_JOBS
    raw = [jobs] if isinstance(jobs, str) else list(jobs)
    names = [part.strip() for item in raw for part in str(item).split(",") if part.strip()]
    if not names:
        raise ConfigError(f"jobs is empty; known jobs: {','.join(KNOWN_JOBS)}")
    unknown = [n for n in names if n not in KNOWN_JOBS]
    if unknown:
        raise ConfigError(f"unknown backfill job {unknown[0]!r}; known jobs: {','.join(KNOWN_JOBS)}")
    return tuple(job for job in KNOWN_JOBS if job in names)


def validate(
    start: Any,
    end: Any,
    jobs: Sequence[str] | str | None = None,
    *,
    force: bool = False,
    today: date | None = None,
    policy: settings.BackfillPolicy | None = None,
) -> Request:
    """Check a backfill request before anything is touched; ConfigError names the first problem."""
    policy = policy or settings.BackfillPolicy()
    first, last = clock.parse_day(start, "start"), clock.parse_day(end, "end")
    today = today or clock.today()
    if first > last:
        raise ConfigError(f"start {first} is after end {last}")
    if last > today:
        raise ConfigError(f"end {last} is in the future (today is {today} UTC)")
    span = (last - first).days + 1
    if span > policy.max_days and not force:
        raise ConfigError(
            f"{span} days exceed backfill.max_days = {policy.max_days};"
            " set force (--force) to backfill them anyway"
        )
    return Request(first, last, parse_jobs(jobs), force)
