"""When a cron schedule fires, read in its own time zone (a job's schedule: ``serving.schedule_for``).

cronsim reads the expression like Debian's cron, daylight saving included: a daily 08:00 job in
Europe/Berlin fires at 08:00 local on both sides of a change (23 or 25 hours apart), a time the
spring change skips fires right after the gap, a time the autumn change repeats fires once.
Prefect's vendored croniter, iterated on aware datetimes, moves such fires by an hour (the watchdog
and the report's late runs used it), so pgtender reads its schedules here.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim


def _local(moment: datetime, tz: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("fire times need an aware datetime")
    return moment.astimezone(ZoneInfo(tz))


def fires_between(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in [start, end), in UTC."""
    out: list[datetime] = []
    for fire in CronSim(cron, _local(start, tz) - timedelta(seconds=1)):
        at = fire.astimezone(UTC)
        if at >= end:
            return out
        if at >= start:
            out.append(at)
    return out  # pragma: no cover - CronSim never ends


def fires_around(cron: str, tz: str, now: datetime, n: int = 32) -> list[datetime]:
    """The ``n`` fire times up to ``now`` (a fire at ``now`` included) and the ``n`` after it, in
    order, in UTC. (Skipping a fire at exactly ``now`` would join the gaps on either side of it.)"""
    local = _local(now, tz)
    before = list(itertools.islice(CronSim(cron, local + timedelta(seconds=1), reverse=True), n))
    after = list(itertools.islice(CronSim(cron, local), n))
    return [f.astimezone(UTC) for f in [*reversed(before), *after]]


def longest_gap(cron: str, tz: str, now: datetime, n: int = 32) -> timedelta:
    """The longest time between consecutive fires around ``now`` (``fires_around``): a schedule's
    period, and across a DST change the longer of its two lengths."""
    fires = fires_around(cron, tz, now, n)
    return max(b - a for a, b in itertools.pairwise(fires))
