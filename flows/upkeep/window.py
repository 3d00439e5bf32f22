"""The upkeep window: is it open at ``now``, when does it close, when does it open next.

A window is "every day from ``start`` to ``end`` on the wall clock of ``timezone``" (``end`` before
``start``: it crosses midnight). An instant is inside when the local wall time it reads is in
[start, end): rebuilds never run at a time the operator's clock shows outside the window, across
a DST change too. On the day the clocks jump forward a window shrinks by the skipped hour (one that
lies wholly in the gap does not open that day); on the day they fall back a window that covers the
repeated hour is open during both passes of it.

The daily run is a cron at ``start`` in the same zone (``UpkeepWindow.cron``); when ``start`` falls
in the spring gap cron fires after the gap and the run may find the window closed: it then does
everything but the rebuilds. Every function takes ``now`` (aware): nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flows.core.policy.upkeep import UpkeepWindow

_SECOND = timedelta(seconds=1)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("the upkeep window needs an aware datetime")
    return now.astimezone(UTC)


def _inside(window: UpkeepWindow, wall: time) -> bool:
    start, end = window.start_time, window.end_time
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def is_open(window: UpkeepWindow, now: datetime) -> bool:
    """Does the local wall clock at ``now`` read a time inside the window?"""
    local = _aware(now).astimezone(ZoneInfo(window.timezone))
    return _inside(window, local.time().replace(tzinfo=None))


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def crossings(wall: time, zone: ZoneInfo, day: date) -> Iterator[datetime]:
    """The UTC instants on local ``day`` at which the wall clock reaches ``wall``: one, two when the
    autumn change repeats it, or the instant of the spring change when the clock jumps over it."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if _local(first, zone) == naive:
        yield first
        if second != first:
            yield second
        return
    # Skipped: fold=1 reads it before the gap, fold=0 after; the jump lies between (bisected).
    low, high = min(first, second), max(first, second)
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if _local(middle, zone) >= naive:
            high = middle
        else:
            low = middle
    yield high.replace(microsecond=0)


def _jumps(zone: ZoneInfo, day: date) -> Iterator[datetime]:
    """The instant of a change of offset (DST) during local ``day``, if any."""
    low = datetime.combine(day, time()).replace(tzinfo=zone).astimezone(UTC)
    high = low + timedelta(days=1)
    if low.astimezone(zone).utcoffset() == high.astimezone(zone).utcoffset():
        return
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
            low = middle
        else:
            high = middle
    yield high.replace(microsecond=0)


def _changes(window: UpkeepWindow, now: datetime) -> list[datetime]:
    """Every instant from the day before ``now`` to two days after where the window may open or
    close: the wall clock reaching ``start`` or ``end``, or jumping (DST)."""
    zone = ZoneInfo(window.timezone)
    today = _local(now, zone).date()
    found: set[datetime] = set()
    for offset in range(-1, 3):
        day = today + timedelta(days=offset)
        found.update(crossings(window.start_time, zone, day))
        found.update(crossings(window.end_time, zone, day))
        found.update(_jumps(zone, day))
    return sorted(found)


def closes_at(window: UpkeepWindow, now: datetime) -> datetime | None:
    """The first instant after ``now`` the window is closed (None when it is closed at ``now``)."""
    now = _aware(now)
    if not is_open(window, now):
        return None
    for moment in _changes(window, now):
        if moment > now and not is_open(window, moment):
            return moment
    raise ValueError(f"the window {window.describe()} does not close within two days of {now.isoformat()}")


def next_opening(window: UpkeepWindow, now: datetime) -> datetime:
    """``now`` when the window is open, else the next instant it opens."""
    now = _aware(now)
    if is_open(window, now):
        return now
    for moment in _changes(window, now):
        if moment > now and is_open(window, moment):
            return moment
    raise ValueError(f"the window {window.describe()} does not open within two days of {now.isoformat()}")


def remaining(window: UpkeepWindow, now: datetime) -> timedelta:
    """How long the window stays open after ``now`` (zero when it is closed)."""
    closing = closes_at(window, now)
    return timedelta(0) if closing is None else closing - _aware(now)
