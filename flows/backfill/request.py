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

from flows.core import clock
from flows.core.engine import Phase, Replays
from flows.core.errors import ConfigError
from flows.core.policy import settings

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "backfill"
RANGE = "range"  # the `day` of a range job's item
_ORDER = {Phase.BEFORE: 0, Phase.DAY: 1, Phase.AFTER: 2}


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
    phases: tuple[Phase, ...] = ()  # each job's (jobs[i]'s); empty: every job per day

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

    def phase(self, job: str) -> Phase:
        return self.phases[self.jobs.index(job)] if self.phases else Phase.DAY

    def items(self) -> list[Item]:
        """Jobs run once before the days, then each day's jobs, then jobs run once after them."""
        out = [Item(job, RANGE) for job in self.jobs if self.phase(job) is Phase.BEFORE]
        day_jobs = [job for job in self.jobs if self.phase(job) is Phase.DAY]
        out += [Item(job, d.isoformat()) for d in self.days for job in day_jobs]
        out += [Item(job, RANGE) for job in self.jobs if self.phase(job) is Phase.AFTER]
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


def parse_jobs(jobs: Sequence[str] | str | None, known: dict[str, Replays]) -> tuple[str, ...]:
    """``["quality", "capacity"]`` or ``"quality,capacity"`` in execution order (phase, then name);
    None: the jobs ``known`` marks as default."""
    ordered = sorted(known, key=lambda job: (_ORDER[known[job].phase], job))
    if jobs is None:
        return tuple(job for job in ordered if known[job].default)
    raw = [jobs] if isinstance(jobs, str) else list(jobs)
    names = [part.strip() for item in raw for part in str(item).split(",") if part.strip()]
    if not names:
        raise ConfigError(f"jobs is empty; known jobs: {','.join(ordered)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown backfill job {unknown[0]!r}; known jobs: {','.join(ordered)}")
    return tuple(job for job in ordered if job in names)


def validate(
    start: Any,
    end: Any,
    jobs: Sequence[str] | str | None = None,
    *,
    known: dict[str, Replays],
    force: bool = False,
    today: date | None,
    policy: settings.BackfillPolicy | None = None,
) -> Request:
    """Check a backfill request before anything is touched; ConfigError names the first problem."""
    policy = policy or settings.BackfillPolicy()
    first, last = clock.parse_day(start, "start"), clock.parse_day(end, "end")
    if first > last:
        raise ConfigError(f"start {first} is after end {last}")
    if today is not None and last > today:
        raise ConfigError(f"end {last} is in the future (today is {today} UTC)")
    span = (last - first).days + 1
    if span > policy.max_days and not force:
        raise ConfigError(
            f"{span} days exceed backfill.max_days = {policy.max_days};"
            " set force (--force) to backfill them anyway"
        )
    names = parse_jobs(jobs, known)
    return Request(first, last, names, force, tuple(known[job].phase for job in names))
