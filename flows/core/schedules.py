"""Cron arithmetic on a job's schedule (each job declares its own in its ``JobSpec``).

Maintenance schedules are UTC; the report's zone is ``report.timezone`` of the policy. The
deployments, the health watchdog, the report's lateness counts and the pg_cron takeover all read
the registry's schedules. Cron parsing uses ``croniter`` (a direct dependency, the same library Prefect
vendors for its own cron schedules) in the schedule's own time zone, so a daily job is "daily"
across a DST switch too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter


def _walk(cron: str, tz: str, moment: datetime, *, forward: bool) -> Iterator[datetime]:
    """Fire times after (or, backwards, at and before) ``moment``, in UTC.

    Like cron and like Prefect's own cron schedules, the expression is read on the schedule's wall
    clock: croniter walks naive local times, each is then placed in the zone. A time the autumn
    change repeats fires once (its first occurrence); a time the spring change skips fires at the
    same distance after the gap. Daily 08:00 Europe/Berlin is 08:00 local on both sides of a change
    (23 or 25 hours apart), never 09:00.
    """
    if moment.tzinfo is None:
        raise ValueError("fire times need an aware datetime")
    zone = ZoneInfo(tz)
    local = moment.astimezone(zone).replace(tzinfo=None)
    it = croniter(cron, local if forward else local + timedelta(microseconds=1))
    while True:
        naive: datetime = it.get_next(datetime) if forward else it.get_prev(datetime)
        yield naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str

    def fires(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after``, in UTC."""
        return list(itertools.islice(_walk(self.cron, self.timezone, after, forward=True), count))

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every fire time in ``[start, end)``, in UTC."""
        out: list[datetime] = []
        for fire in _walk(self.cron, self.timezone, start - timedelta(microseconds=1), forward=True):
            if fire >= end:
                return out
            if fire >= start:
                out.append(fire)
        return out  # pragma: no cover - a cron schedule never ends

    def fires_around(self, now: datetime, count: int = 32) -> list[datetime]:
        """The ``count`` fire times up to ``now`` (a fire at ``now`` included) and the ``count``
        after it, in order. (Skipping a fire at exactly ``now`` would join the gaps beside it.)"""
        before = list(itertools.islice(_walk(self.cron, self.timezone, now, forward=False), count))
        return [*reversed(before), *self.fires(now, count)]

    def period(self, around: datetime) -> timedelta:
        """The longest time between consecutive fires around ``around``: the schedule's period,
        and across a DST change the longer of its two lengths (25 h for a daily local job)."""
        fires = self.fires_around(around)
        return max(b - a for a, b in itertools.pairwise(fires))


def expected_period(cron: str, now: datetime, timezone: str = "UTC") -> timedelta:
    """The longest gap between consecutive fire times of ``cron`` (in ``timezone``) after ``now``."""
    return Schedule(cron, timezone).period(now)
