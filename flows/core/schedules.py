"""Every job's default schedule (DESIGN.md's table) and cron arithmetic on it.

Maintenance schedules are UTC; the report's zone is ``report.timezone`` of the policy. The
deployments, the health watchdog, the report's lateness counts and the pg_cron takeover all read
this one table. Cron parsing uses ``croniter`` (a direct dependency, the same library Prefect
vendors for its own cron schedules) in the schedule's own time zone, so a daily job is "daily"
across a DST switch too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from croniter import croniter

if TYPE_CHECKING:
    from flows.core.settings import Policy

# job -> cron. The health watchdog expects every one of these jobs to succeed on time.
SCHEDULES: dict[str, str] = {
    "capacity": "0 2 * * *",
    "partitions": "5 0 * * *",
    "retention": "0 3 * * 0",
    "views": "*/15 * * * *",
    "health": "*/5 * * * *",
    "quality": "0 1 * * *",
    "report": "0 8 * * 1",
}

# Jobs whose schedule is read in the report's configurable IANA time zone instead of UTC.
REPORT_TZ_JOBS: frozenset[str] = frozenset({"report"})


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str

    def fires(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after`` (aware, in the schedule's zone)."""
        it = croniter(self.cron, after.astimezone(ZoneInfo(self.timezone)))
        return [it.get_next(datetime) for _ in range(count)]

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Fire times in ``[start, end)``."""
        it = croniter(self.cron, start.astimezone(ZoneInfo(self.timezone)) - timedelta(microseconds=1))
        out: list[datetime] = []
        while (moment := it.get_next(datetime)) < end:
            out.append(moment)
        return out

    def period(self, around: datetime) -> timedelta:
        """The longest gap between consecutive fire times over the next 32 firings."""
        fires = self.fires(around, 32)
        return max(b - a for a, b in itertools.pairwise(fires))


def schedule_for(job: str, policy: Policy | None = None) -> Schedule | None:
    """The job's default schedule, or None for on-demand jobs (backfill)."""
    cron = SCHEDULES.get(job)
    if cron is None:
        return None
    if job in REPORT_TZ_JOBS:
        from flows.core import settings  # noqa: PLC0415 - read at call time, never at import

        policy = policy or settings.current_policy()
        return Schedule(cron, policy.report.timezone)
    return Schedule(cron, "UTC")


def all_schedules(policy: Policy | None = None) -> dict[str, Schedule]:
    """Every scheduled job's schedule, with the policy's report time zone."""
    out: dict[str, Schedule] = {}
    for job in SCHEDULES:
        schedule = schedule_for(job, policy)
        if schedule is not None:
            out[job] = schedule
    return out


def expected_period(cron: str, now: datetime, timezone: str = "UTC") -> timedelta:
    """The longest gap between consecutive fire times of ``cron`` (in ``timezone``) after ``now``."""
    return Schedule(cron, timezone).period(now)
