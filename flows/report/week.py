"""The report's week: ISO weeks in the report's time zone, parsed and checked before anything runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flows.core.errors import ConfigError
from flows.core.policy import settings
from flows.report import mail as report_email

_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


# ---------------------------------------------------------------- input


@dataclass(frozen=True)
class Week:
    label: str  # 2026-W47
    monday: date
    tz: str
    complete: bool

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=i) for i in range(7)]

    @property
    def start(self) -> datetime:
        """Monday 00:00 in the report's time zone."""
        return datetime.combine(self.monday, time(0), tzinfo=ZoneInfo(self.tz))

    @property
    def end(self) -> datetime:
        return datetime.combine(self.monday + timedelta(days=7), time(0), tzinfo=ZoneInfo(self.tz))

    @property
    def hours(self) -> int:
        """168, or 167 / 169 when the report's zone changes its clocks during the week."""
        # in UTC: between two datetimes of the same zone Python subtracts wall-clock times
        return round((self.end.astimezone(UTC) - self.start.astimezone(UTC)).total_seconds() / 3600)

    def ranges_text(self) -> str:
        """The UTC ranges the report counted: seven local days for job runs and alerts, seven UTC
        days for quality (its results are per UTC day)."""
        fmt = "%Y-%m-%d %H:%M"
        return (
            f"job runs and alerts {self.start.astimezone(UTC):{fmt}} to {self.end.astimezone(UTC):{fmt}} UTC"
            f" ({self.hours} h: Monday 00:00 to Monday 00:00 {self.tz}); quality by UTC day,"
            f" {self.days[0].isoformat()} to {self.days[-1].isoformat()}"
        )

    @property
    def utc_start(self) -> datetime:
        """Monday 00:00 UTC: quality results are per UTC day."""
        return datetime.combine(self.monday, time(0), tzinfo=UTC)

    @property
    def utc_end(self) -> datetime:
        return self.utc_start + timedelta(days=7)

    def previous(self) -> Week:
        return week_of(self.monday - timedelta(days=7), self.tz, complete=True)


def week_of(day: date, tz: str, *, complete: bool) -> Week:
    monday = day - timedelta(days=day.weekday())
    year, number, _ = monday.isocalendar()
    return Week(f"{year}-W{number:02d}", monday, tz, complete)


def week_monday(week: str) -> date:
    """The Monday of an ISO week ``YYYY-Www`` (ConfigError for a label that is none)."""
    match = _WEEK_RE.match(week.strip()) if isinstance(week, str) else None
    if match is None:
        raise ConfigError(f"week must be an ISO week like 2026-W47, got {week!r}")
    try:
        return date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ConfigError(f"week {week!r} does not exist (ISO years have 52 or 53 weeks)") from None


def parse_week(week: str | None, tz: str, *, now: datetime) -> Week:
    """``YYYY-Www`` (ISO week); default: the last complete week in ``tz``. Future weeks are refused."""
    local_today = now.astimezone(ZoneInfo(tz)).date()
    if week is None:
        return week_of(local_today - timedelta(days=7), tz, complete=True)
    found = week_of(week_monday(week), tz, complete=True)
    if found.start > now:
        raise ConfigError(f"week {week} has not started yet in {tz}")
    return Week(found.label, found.monday, tz, complete=found.end <= now)


def recipients_for(to: str | None, policy: settings.ReportPolicy, *, dry_run: bool) -> list[str]:
    if to is not None:
        return report_email.parse_recipients(to)
    if not policy.recipients and not dry_run:
        raise ConfigError("no recipients: set report.recipients in the policy or pass --to")
    return list(policy.recipients)
