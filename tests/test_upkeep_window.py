"""The upkeep window and the ``[upkeep]`` policy, without a database: the window's instants at the
DST changes (Europe/Berlin 2027-03-28 and 2027-10-31), month and year ends and 29 February, and
the bad input the policy refuses in one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.core.errors import ConfigError
from flows.core.policy.settings import load_policy
from flows.core.policy.upkeep import UpkeepWindow
from flows.core.schedules import Schedule
from flows.upkeep import window

BERLIN = ZoneInfo("Europe/Berlin")
SPRING = datetime(2027, 3, 28, tzinfo=UTC)  # 02:00 CET -> 03:00 CEST at 01:00 UTC
AUTUMN = datetime(2027, 10, 31, tzinfo=UTC)  # 03:00 CEST -> 02:00 CET at 01:00 UTC


def berlin(start: str, end: str) -> UpkeepWindow:
    return UpkeepWindow(start=start, end=end, timezone="Europe/Berlin")


def utc(day: datetime, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm, second=ss)


def open_minutes(w: UpkeepWindow, start: datetime, hours: int) -> int:
    """Minutes (sampled at each minute's middle) the window is open in ``hours`` from ``start``."""
    return sum(window.is_open(w, start + timedelta(minutes=m, seconds=30)) for m in range(hours * 60))


# ---------------------------------------------------------------- a plain day


def test_a_plain_window_opens_and_closes_on_the_wall_clock() -> None:
    w = UpkeepWindow(start="00:30", end="04:30", timezone="UTC")
    day = datetime(2027, 6, 15, tzinfo=UTC)
    assert not window.is_open(w, utc(day, 0, 29, 59))
    assert window.is_open(w, utc(day, 0, 30))
    assert window.closes_at(w, utc(day, 1)) == utc(day, 4, 30)
    assert window.remaining(w, utc(day, 4)) == timedelta(minutes=30)
    assert not window.is_open(w, utc(day, 4, 30)) and window.closes_at(w, utc(day, 5)) is None
    assert window.remaining(w, utc(day, 5)) == timedelta(0)
    assert window.next_opening(w, utc(day, 5)) == utc(day + timedelta(days=1), 0, 30)
    assert window.next_opening(w, utc(day, 2)) == utc(day, 2)  # open: now
    assert open_minutes(w, day, 24) == 240


def test_the_daily_run_fires_at_the_window_start_in_its_zone() -> None:
    w = berlin("01:30", "05:00")
    fires = Schedule(w.cron, w.timezone).fires(datetime(2027, 7, 1, tzinfo=UTC), 3)
    assert [f.astimezone(BERLIN).strftime("%H:%M") for f in fires] == ["01:30"] * 3
    assert all(window.is_open(w, f) for f in fires)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window.is_open(berlin("01:00", "02:00"), datetime(2027, 1, 1))


# ---------------------------------------------------------------- DST


def test_spring_change_shortens_a_window_across_the_gap() -> None:
    w = berlin("01:00", "04:00")  # 00:00-02:00 UTC that day (3 h of wall clock, 2 h lived)
    assert window.is_open(w, utc(SPRING, 0, 59))  # 01:59 CET
    assert window.is_open(w, utc(SPRING, 1))  # 03:00 CEST
    assert window.closes_at(w, utc(SPRING, 0, 30)) == utc(SPRING, 2)  # 04:00 CEST
    assert open_minutes(w, SPRING - timedelta(hours=2), 6) == 120
    # the day after: 3 h again (01:00-04:00 CEST = 23:00-02:00 UTC)
    assert open_minutes(w, SPRING + timedelta(hours=12), 24) == 180


def test_spring_change_closes_a_window_whose_end_is_skipped_at_the_jump() -> None:
    w = berlin("01:00", "02:30")
    assert window.closes_at(w, utc(SPRING, 0, 30)) == utc(SPRING, 1)  # 01:59:59 CET -> 03:00 CEST
    assert not window.is_open(w, utc(SPRING, 1))


def test_spring_change_a_window_inside_the_gap_does_not_open_that_day() -> None:
    w = berlin("02:15", "02:45")
    day_start = datetime(2027, 3, 27, 23, tzinfo=UTC)  # 00:00 CET
    assert open_minutes(w, day_start, 23) == 0
    assert window.next_opening(w, day_start) == datetime(2027, 3, 29, 0, 15, tzinfo=UTC)  # 02:15 CEST
    # cron fires after the gap (03:15 CEST): the run finds the window closed and defers rebuilds
    fire = Schedule(w.cron, w.timezone).fires(day_start, 1)[0]
    assert fire == utc(SPRING, 1, 15) and not window.is_open(w, fire)


def test_spring_change_a_start_in_the_gap_opens_at_the_jump() -> None:
    w = berlin("02:15", "04:00")
    assert window.next_opening(w, utc(SPRING, 0)) == utc(SPRING, 1)  # 03:00 CEST
    fire = Schedule(w.cron, w.timezone).fires(utc(SPRING, 0), 1)[0]
    assert window.is_open(w, fire) and window.closes_at(w, fire) == utc(SPRING, 2)


def test_autumn_change_a_window_over_the_repeated_hour_is_open_in_both_passes() -> None:
    w = berlin("02:15", "04:00")
    assert window.is_open(w, utc(AUTUMN, 0, 20))  # 02:20 CEST, first pass
    assert window.closes_at(w, utc(AUTUMN, 0, 20)) == utc(AUTUMN, 1)  # clocks go back to 02:00 CET
    assert not window.is_open(w, utc(AUTUMN, 1, 5))  # 02:05 CET: before 02:15 again
    assert window.next_opening(w, utc(AUTUMN, 1, 5)) == utc(AUTUMN, 1, 15)  # 02:15 CET
    assert window.closes_at(w, utc(AUTUMN, 1, 15)) == utc(AUTUMN, 3)  # 04:00 CET
    assert open_minutes(w, AUTUMN - timedelta(hours=2), 8) == 45 + 105


def test_autumn_change_a_window_ending_in_the_repeated_hour_reopens_for_its_second_pass() -> None:
    w = berlin("01:00", "02:30")
    assert window.closes_at(w, utc(AUTUMN, 0)) == utc(AUTUMN, 0, 30)  # 02:30 CEST
    assert window.next_opening(w, utc(AUTUMN, 0, 31)) == utc(AUTUMN, 1)  # 02:00 CET
    assert window.closes_at(w, utc(AUTUMN, 1)) == utc(AUTUMN, 1, 30)  # 02:30 CET


def test_a_window_crossing_midnight_across_both_changes() -> None:
    w = berlin("23:00", "03:30")
    # spring night: 23:00 CET (22:00 UTC) until 03:30 CEST (01:30 UTC) = 3.5 h lived
    assert window.closes_at(w, datetime(2027, 3, 27, 22, 30, tzinfo=UTC)) == utc(SPRING, 1, 30)
    # autumn night: 23:00 CEST (21:00 UTC) to 03:30 CET (02:30 UTC) = 5.5 h lived, never closed between
    night = datetime(2027, 10, 30, 21, tzinfo=UTC)
    assert window.closes_at(w, night) == utc(AUTUMN, 2, 30)
    assert open_minutes(w, night, 6) == 330


# ---------------------------------------------------------------- month ends, 29 February


@pytest.mark.parametrize(
    ("now", "closes"),
    [
        (datetime(2027, 1, 31, 23, 30, tzinfo=BERLIN), datetime(2027, 2, 1, 1, 0, tzinfo=BERLIN)),
        (datetime(2027, 4, 30, 23, 59, 59, tzinfo=BERLIN), datetime(2027, 5, 1, 1, 0, tzinfo=BERLIN)),
        (datetime(2027, 12, 31, 23, 0, tzinfo=BERLIN), datetime(2028, 1, 1, 1, 0, tzinfo=BERLIN)),
        (datetime(2028, 2, 28, 23, 30, tzinfo=BERLIN), datetime(2028, 2, 29, 1, 0, tzinfo=BERLIN)),
        (datetime(2028, 2, 29, 0, 59, tzinfo=BERLIN), datetime(2028, 2, 29, 1, 0, tzinfo=BERLIN)),
        (datetime(2028, 2, 29, 23, 30, tzinfo=BERLIN), datetime(2028, 3, 1, 1, 0, tzinfo=BERLIN)),
    ],
)
def test_a_window_over_midnight_at_month_ends_and_leap_day(now: datetime, closes: datetime) -> None:
    w = berlin("23:00", "01:00")
    assert window.is_open(w, now)
    assert window.closes_at(w, now) == closes.astimezone(UTC)


def test_next_opening_on_and_after_29_february() -> None:
    w = UpkeepWindow(start="23:00", end="01:00", timezone="UTC")
    assert window.next_opening(w, datetime(2028, 2, 29, 12, tzinfo=UTC)) == datetime(
        2028, 2, 29, 23, tzinfo=UTC
    )
    w = UpkeepWindow(start="00:30", end="04:30", timezone="UTC")
    assert window.next_opening(w, datetime(2028, 2, 28, 5, tzinfo=UTC)) == datetime(
        2028, 2, 29, 0, 30, tzinfo=UTC
    )
    assert window.next_opening(w, datetime(2028, 2, 29, 5, tzinfo=UTC)) == datetime(
        2028, 3, 1, 0, 30, tzinfo=UTC
    )
    assert window.next_opening(w, datetime(2027, 2, 28, 5, tzinfo=UTC)) == datetime(
        2027, 3, 1, 0, 30, tzinfo=UTC
    )


# ---------------------------------------------------------------- any instant


WALL = st.times().map(lambda t: t.strftime("%H:%M"))


@settings(max_examples=200, deadline=None)
@given(
    start=WALL,
    end=WALL,
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
    moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_open_until_it_closes_and_closed_until_it_opens(
    start: str, end: str, zone: str, moment: datetime
) -> None:
    if start == end:
        return
    w = UpkeepWindow(start=start, end=end, timezone=zone)
    now = moment.replace(tzinfo=UTC)
    closes = window.closes_at(w, now)
    if window.is_open(w, now):
        assert closes is not None and closes > now and not window.is_open(w, closes)
        assert window.is_open(w, now + (closes - now) / 2) and window.is_open(
            w, closes - timedelta(seconds=1)
        )
    else:
        assert closes is None
        opens = window.next_opening(w, now)
        assert opens > now and window.is_open(w, opens)
        assert not window.is_open(w, now + (opens - now) / 2)


# ---------------------------------------------------------------- the policy


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pgtender.toml"
    path.write_text(text, encoding="utf-8")
    load_policy(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[upkeep.window]\nstart = "02:00"\nend = "02:00"\n', "never opens"),
        ('[upkeep.window]\nstart = "25:00"\n', "not a wall time"),
        ('[upkeep.window]\ntimezone = "Mars/Olympus"\n', "unknown IANA time zone"),
        ("[upkeep.thresholds]\nbloat_pct = -5\n", "greater than or equal to 0"),
        ("[upkeep.thresholds]\nunused_days = -1\n", "greater than or equal to 0"),
        ("[upkeep.thresholds]\ndead_tuple_ratio = -0.1\n", "greater than or equal to 0"),
        ("[upkeep.thresholds]\nanalyze_change_fraction = -1\n", "greater than or equal to 0"),
        ("[upkeep.thresholds]\nvacuum_age_hours = -2\n", "greater than or equal to 0"),
        ("[upkeep.thresholds]\nmin_index_mb = -1\n", "greater than or equal to 0"),
        ("[upkeep.thresholds]\nbloat = 30\n", "Extra inputs are not permitted"),
        ('[upkeep]\ndry_run = "yes"\n', "valid boolean"),
        ('[upkeep]\ninclude = ["a"]\nexclude = ["a"]\n', "both included and excluded"),
        ("[upkeep]\nlock_timeout_ms = 0\n", "greater than 0"),
        (
            '[targets.eu]\nurl_env = "X"\n[targets.eu.upkeep.window]\nstart = "01:00"\nend = "01:00"\n',
            "never opens",
        ),
    ],
)
def test_bad_upkeep_policy_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, text)
    assert "\n" not in str(info.value) and "upkeep" in str(info.value)


def test_a_target_overrides_the_window(tmp_path: Path) -> None:
    path = tmp_path / "pgtender.toml"
    path.write_text(
        '[upkeep.window]\nstart = "01:00"\nend = "03:00"\n'
        '[targets.us]\nurl_env = "US_URL"\n[targets.us.upkeep.window]\ntimezone = "America/New_York"\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.upkeep.window.timezone == "UTC"
    us = policy.for_target("us").upkeep.window
    assert (us.start, us.end, us.timezone) == ("01:00", "03:00", "America/New_York")
