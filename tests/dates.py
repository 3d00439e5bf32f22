"""What is true at each instant of the calendar matrix (tests/calendar.py's MATRIX), written out by
hand: the oracle of tests/test_dates*.py, which run the date logic at every instant with ``now`` as
a parameter (no clock is moved, each case takes milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tests.calendar import MATRIX


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@dataclass(frozen=True)
class Facts:
    yesterday: date  # the UTC day before (quality's default day)
    month: date  # the 1st of the current UTC month
    monday: date  # the Monday of the current ISO week (UTC)
    berlin_today: date  # the date in Europe/Berlin
    last_week_utc: str  # the report's default week (the last complete one), in UTC ...
    last_week_berlin: str  # ... and in Europe/Berlin
    berlin_week_hours: int  # the Berlin week in progress: 168, 167 / 169 with a DST change
    minus_month: datetime  # now - "1 month" (calendar months, the day clamped)
    health_window: datetime  # the start of the 5-minute health window holding now
    next_partitions: datetime  # the next firing of "5 0 * * *" (UTC)
    next_retention: datetime  # the next firing of "0 3 * * 0" (UTC)
    next_report: datetime  # the next firing of "0 8 * * 1" in Europe/Berlin, in UTC
    last_report: datetime  # the firing before it (an hour further apart across a DST change)
    daily_firings_this_week: int  # firings of "5 0 * * *" since the UTC week's Monday, up to now
    berlin_daily_period_hours: int  # longest gap of "0 8 * * *" Europe/Berlin around now

    @property
    def today(self) -> date:
        return self.yesterday + timedelta(days=1)


FACTS: dict[datetime, Facts] = {
    # Friday 1 January 2027, 00:00:30 (01:00:30 in Berlin): yesterday is last year's
    utc(2027, 1, 1, 0, 0, 30): Facts(
        yesterday=date(2026, 12, 31),
        month=date(2027, 1, 1),
        monday=date(2026, 12, 28),
        berlin_today=date(2027, 1, 1),
        last_week_utc="2026-W52",
        last_week_berlin="2026-W52",
        berlin_week_hours=168,
        minus_month=utc(2026, 12, 1, 0, 0, 30),
        health_window=utc(2027, 1, 1, 0, 0),
        next_partitions=utc(2027, 1, 1, 0, 5),
        next_retention=utc(2027, 1, 3, 3, 0),
        next_report=utc(2027, 1, 4, 7, 0),
        last_report=utc(2026, 12, 28, 7, 0),
        daily_firings_this_week=4,
        berlin_daily_period_hours=24,
    ),
    # Friday 30 April 2027, 23:59:30 (Saturday 1 May 01:59:30 in Berlin)
    utc(2027, 4, 30, 23, 59, 30): Facts(
        yesterday=date(2027, 4, 29),
        month=date(2027, 4, 1),
        monday=date(2027, 4, 26),
        berlin_today=date(2027, 5, 1),
        last_week_utc="2027-W16",
        last_week_berlin="2027-W16",
        berlin_week_hours=168,
        minus_month=utc(2027, 3, 30, 23, 59, 30),
        health_window=utc(2027, 4, 30, 23, 55),
        next_partitions=utc(2027, 5, 1, 0, 5),
        next_retention=utc(2027, 5, 2, 3, 0),
        next_report=utc(2027, 5, 3, 6, 0),
        last_report=utc(2027, 4, 26, 6, 0),
        daily_firings_this_week=5,
        berlin_daily_period_hours=24,
    ),
    # Tuesday 29 February 2028, noon
    utc(2028, 2, 29, 12, 0): Facts(
        yesterday=date(2028, 2, 28),
        month=date(2028, 2, 1),
        monday=date(2028, 2, 28),
        berlin_today=date(2028, 2, 29),
        last_week_utc="2028-W08",
        last_week_berlin="2028-W08",
        berlin_week_hours=168,
        minus_month=utc(2028, 1, 29, 12, 0),
        health_window=utc(2028, 2, 29, 12, 0),
        next_partitions=utc(2028, 3, 1, 0, 5),
        next_retention=utc(2028, 3, 5, 3, 0),
        next_report=utc(2028, 3, 6, 7, 0),
        last_report=utc(2028, 2, 28, 7, 0),
        daily_firings_this_week=2,
        berlin_daily_period_hours=24,
    ),
    # Sunday 28 February 2027, 23:59:30 (Monday 1 March 00:59:30 in Berlin: another week there)
    utc(2027, 2, 28, 23, 59, 30): Facts(
        yesterday=date(2027, 2, 27),
        month=date(2027, 2, 1),
        monday=date(2027, 2, 22),
        berlin_today=date(2027, 3, 1),
        last_week_utc="2027-W07",
        last_week_berlin="2027-W08",
        berlin_week_hours=168,
        minus_month=utc(2027, 1, 28, 23, 59, 30),
        health_window=utc(2027, 2, 28, 23, 55),
        next_partitions=utc(2027, 3, 1, 0, 5),
        next_retention=utc(2027, 3, 7, 3, 0),
        next_report=utc(2027, 3, 1, 7, 0),
        last_report=utc(2027, 2, 22, 7, 0),
        daily_firings_this_week=7,
        berlin_daily_period_hours=24,
    ),
    # Thursday 31 December 2026, 23:59:30 (already 2027 in Berlin; ISO week 2026-W53 everywhere)
    utc(2026, 12, 31, 23, 59, 30): Facts(
        yesterday=date(2026, 12, 30),
        month=date(2026, 12, 1),
        monday=date(2026, 12, 28),
        berlin_today=date(2027, 1, 1),
        last_week_utc="2026-W52",
        last_week_berlin="2026-W52",
        berlin_week_hours=168,
        minus_month=utc(2026, 11, 30, 23, 59, 30),
        health_window=utc(2026, 12, 31, 23, 55),
        next_partitions=utc(2027, 1, 1, 0, 5),
        next_retention=utc(2027, 1, 3, 3, 0),
        next_report=utc(2027, 1, 4, 7, 0),
        last_report=utc(2026, 12, 28, 7, 0),
        daily_firings_this_week=4,
        berlin_daily_period_hours=24,
    ),
    # Sunday 28 March 2027, 00:59:30: Berlin springs forward at 01:00 UTC (a 167-hour week)
    utc(2027, 3, 28, 0, 59, 30): Facts(
        yesterday=date(2027, 3, 27),
        month=date(2027, 3, 1),
        monday=date(2027, 3, 22),
        berlin_today=date(2027, 3, 28),
        last_week_utc="2027-W11",
        last_week_berlin="2027-W11",
        berlin_week_hours=167,
        minus_month=utc(2027, 2, 28, 0, 59, 30),
        health_window=utc(2027, 3, 28, 0, 55),
        next_partitions=utc(2027, 3, 29, 0, 5),
        next_retention=utc(2027, 3, 28, 3, 0),
        next_report=utc(2027, 3, 29, 6, 0),
        last_report=utc(2027, 3, 22, 7, 0),
        daily_firings_this_week=7,
        berlin_daily_period_hours=24,
    ),
    # Sunday 31 October 2027, 00:59:30: Berlin falls back at 01:00 UTC (a 169-hour week)
    utc(2027, 10, 31, 0, 59, 30): Facts(
        yesterday=date(2027, 10, 30),
        month=date(2027, 10, 1),
        monday=date(2027, 10, 25),
        berlin_today=date(2027, 10, 31),
        last_week_utc="2027-W42",
        last_week_berlin="2027-W42",
        berlin_week_hours=169,
        minus_month=utc(2027, 9, 30, 0, 59, 30),
        health_window=utc(2027, 10, 31, 0, 55),
        next_partitions=utc(2027, 11, 1, 0, 5),
        next_retention=utc(2027, 10, 31, 3, 0),
        next_report=utc(2027, 11, 1, 7, 0),
        last_report=utc(2027, 10, 25, 6, 0),
        daily_firings_this_week=7,
        berlin_daily_period_hours=25,
    ),
}
assert set(FACTS) == {i.at for i in MATRIX}, "every instant of the matrix has its facts"


def month(first: date, k: int) -> date:
    """The 1st of the month ``k`` months after (or before) the month of ``first``."""
    n = first.year * 12 + first.month - 1 + k
    return date(n // 12, n % 12 + 1, 1)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
