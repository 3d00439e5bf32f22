"""The date logic of the report, backfill, capacity, views and retention's dumps at every instant of
the calendar matrix, with ``now`` as a parameter: the report's week and its late runs, backfill
ranges, capacity projections, the rollup's trailing days and the stamps of dump files.

The expected values are tests/dates.py's, written out by hand per instant; no clock is moved.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows import backfill, capacity, report, views
from flows.core.errors import ConfigError
from flows.core.policy import settings
from flows.registry import REGISTRY
from flows.report.render import output_dir
from flows.report.week import week_of
from flows.retention import archive
from tests.calendar import MATRIX, instants
from tests.dates import FACTS, midnight

BERLIN = "Europe/Berlin"
GB = 1024**3


# ------------------------------------------------------------------ the report's week


@instants()
def test_report_week_is_the_last_complete_one_in_its_zone(now: datetime) -> None:
    f = FACTS[now]
    utc_week = report.parse_week(None, "UTC", now=now)
    berlin = report.parse_week(None, BERLIN, now=now)
    assert (utc_week.label, berlin.label) == (f.last_week_utc, f.last_week_berlin)
    for week, tz in ((utc_week, "UTC"), (berlin, BERLIN)):
        assert week.complete and week.end <= now < week.end + timedelta(days=7)
        assert week.start.astimezone(ZoneInfo(tz)).strftime("%a %H:%M") == "Mon 00:00"
        assert week.utc_start == midnight(week.monday) and len(week.days) == 7
    # the week in progress (in Berlin): accepted, incomplete, 167 / 168 / 169 hours long
    year, number, _ = f.berlin_today.isocalendar()
    current = report.parse_week(f"{year}-W{number:02d}", BERLIN, now=now)
    assert not current.complete and current.start <= now < current.end
    assert current.hours == f.berlin_week_hours
    upcoming = current.end.astimezone(ZoneInfo(BERLIN)).isocalendar()
    with pytest.raises(ConfigError, match="has not started yet"):
        report.parse_week(f"{upcoming[0]}-W{upcoming[1]:02d}", BERLIN, now=now)
    assert output_dir(Path("/unused"), current, now).name == now.strftime("%Y%m%dT%H%M%SZ")


@instants()
def test_late_runs_count_the_firings_up_to_now(now: datetime) -> None:
    """Daily 00:05 UTC, the UTC week holding now: each firing so far ran a minute late (on time);
    one firing without a run is late; firings after now are not expected yet."""
    f = FACTS[now]
    week = week_of(f.today, "UTC", complete=False)
    assert week.monday == f.monday
    fires = [midnight(f.monday + timedelta(days=d)) + timedelta(minutes=5) for d in range(7)]
    starts = [fire + timedelta(minutes=1) for fire in fires if fire <= now]
    assert len(starts) == f.daily_firings_this_week
    expected = report.late_runs(starts, "5 0 * * *", "UTC", start=week.start, end=week.end, now=now)
    assert expected == (f.daily_firings_this_week, 0)
    missing = report.late_runs(starts[1:], "5 0 * * *", "UTC", start=week.start, end=week.end, now=now)
    assert missing == (f.daily_firings_this_week, 1)
    whole = report.late_runs(
        starts, "5 0 * * *", "UTC", start=week.start, end=week.end, now=week.end + timedelta(hours=1)
    )
    assert whole == (7, 7 - f.daily_firings_this_week)  # later firings never ran


# ------------------------------------------------------------------ backfill ranges


KNOWN = REGISTRY.replays()  # the jobs a backfill can re-run


@instants()
def test_backfill_ranges_end_today_and_cross_month_and_year_ends(now: datetime) -> None:
    f = FACTS[now]
    today = now.date()
    request = backfill.validate(
        (f.month - timedelta(days=2)).isoformat(), today.isoformat(), known=KNOWN, today=today
    )
    assert request.days[0] == f.month - timedelta(days=2) and request.days[-1] == today
    assert all(b - a == timedelta(days=1) for a, b in zip(request.days, request.days[1:], strict=False))
    assert f.month in request.days and f.yesterday in request.days
    with pytest.raises(ConfigError, match="in the future"):
        backfill.validate(
            f.yesterday.isoformat(), (today + timedelta(days=1)).isoformat(), known=KNOWN, today=today
        )
    items = backfill.validate(
        f.yesterday.isoformat(), today.isoformat(), "partitions,quality,views", known=KNOWN, today=today
    )
    chunks = backfill.chunks(items, items.items(), 1)
    assert [[(i.job, i.day) for i in c] for c in chunks] == [
        [("partitions", "range")],
        [("quality", f.yesterday.isoformat())],
        [("quality", today.isoformat())],
        [("views", "range")],
    ]


# ------------------------------------------------------------------ capacity projections


@instants()
def test_projection_is_anchored_at_now(now: datetime) -> None:
    """14 days of 1 GB/day, one sample a UTC day: the fit's slope, its value now, and the day it
    crosses the threshold, counted from now."""
    import pandas as pd

    f = FACTS[now]
    samples = [now - timedelta(days=k, minutes=1) for k in range(14)]
    frame = pd.DataFrame(
        [
            ("total_bytes", "table", "learning_events", at, float(100 * GB + (13 - k) * GB))
            for k, at in enumerate(samples)
        ],
        columns=["metric_name", "resource_type", "resource_name", "measured_at", "value"],
    )
    policy = settings.CapacityPolicy(table_default_max_bytes=200 * GB)
    (p,) = capacity.project(frame, now=now, policy=policy)
    assert p.points == 14 and p.now == now
    assert p.slope_per_day == pytest.approx(GB)
    assert p.current == pytest.approx(113 * GB, rel=1e-4)  # the last sample is a minute old
    assert p.reaches_at is not None
    assert abs(p.reaches_at - (now + timedelta(days=87))) < timedelta(minutes=5)
    assert capacity.day_end(f.yesterday) == midnight(f.today) - timedelta(seconds=1)


# ------------------------------------------------------------------ views: the rollup's days


@instants()
def test_rollup_recomputes_today_and_yesterday(now: datetime) -> None:
    f = FACTS[now]
    assert views.rollup_days(now.date(), settings.ViewsPolicy()) == (f.yesterday, f.today)
    assert views.rollup_days(now.date(), settings.ViewsPolicy(rollup_days=3)) == (
        f.yesterday - timedelta(days=1),
        f.today,
    )


# ------------------------------------------------------------------ retention's dump files


def test_dump_stamps_sort_like_their_instants_and_never_look_legacy() -> None:
    legacy = re.compile(r"\d{8}T\d{6}Z\.copy\.partial")  # the naming before resumable dumps
    at = [i.at for i in MATRIX]
    stamps = [archive.dump_stamp(moment) for moment in at]
    assert sorted(stamps) == [archive.dump_stamp(moment) for moment in sorted(at)]
    for moment, stamp in zip(at, stamps, strict=True):
        assert stamp == moment.strftime("%Y%m%dT%H%M%S") + "000000Z"
        assert datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC) == moment
        assert not legacy.fullmatch(f"{stamp}.copy.partial")
    berlin = MATRIX[0].at.astimezone(ZoneInfo(BERLIN))  # an aware time in another zone: stamped in UTC
    assert archive.dump_stamp(berlin) == stamps[0]
