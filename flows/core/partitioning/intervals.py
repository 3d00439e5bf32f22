"""Interval arithmetic of range partitions: UTC-midnight bounds of days, ISO weeks and months;
ages like "12 months"; partition names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flows.core.policy.partitions import parse_age

_MAX_NAME_BYTES = 63


def floor_to(moment: datetime, interval: str) -> datetime:
    """Start (UTC midnight) of the day / ISO week / month containing ``moment``."""
    moment = moment.astimezone(UTC)
    day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown interval {interval!r}")


def add_intervals(start: datetime, interval: str, n: int) -> datetime:
    if interval == "day":
        return start + timedelta(days=n)
    if interval == "week":
        return start + timedelta(weeks=n)
    if interval == "month":
        months = start.year * 12 + (start.month - 1) + n
        return start.replace(year=months // 12, month=months % 12 + 1, day=1)
    raise ValueError(f"unknown interval {interval!r}")


def subtract_age(moment: datetime, age: str) -> datetime:
    """``moment`` minus ``"12 months"`` / ``"8 weeks"`` / ``"90 days"`` (months: calendar months)."""
    n, unit = parse_age(age)
    if unit == "month":
        months = moment.year * 12 + (moment.month - 1) - n
        year, month = months // 12, months % 12 + 1
        day = min(moment.day, _days_in_month(year, month))
        return moment.replace(year=year, month=month, day=day)
    return moment - timedelta(days=n * (7 if unit == "week" else 1))


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def partition_name(parent: str, lower: datetime) -> str:
    """``<parent>_pYYYYMMDD``; a long parent name is cut (on a character boundary) to fit 63 bytes."""
    suffix = f"_p{lower:%Y%m%d}"
    room = _MAX_NAME_BYTES - len(suffix)
    prefix = parent
    while len(prefix.encode()) > room:
        prefix = prefix[:-1]
    return prefix + suffix
