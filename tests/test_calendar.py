"""The calendar matrix itself (tests/calendar.py): both clocks read the test's instant, a test can
move them, subprocesses follow, and PostgreSQL's timeouts still fire on a moved clock. These tests
need the clock cluster, so they run in calendar sessions only (.ci/calendar); the ones that do not
depend on the instant run once in a matrix session."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from flows.core import clock
from tests.calendar import CalendarClock
from tests.conftest import Database

pytestmark = pytest.mark.calendar

CLOSE = timedelta(seconds=2)


def _db_now(db: Database) -> datetime:
    with db.connect() as conn:
        return clock.db_now(conn)


def test_both_clocks_read_the_instant(calendar_clock: CalendarClock, migrated_db: Database) -> None:
    instant = calendar_clock.instant
    # the test started on the instant; creating its database took a moment
    assert instant <= clock.now() < instant + timedelta(seconds=30)
    assert abs(_db_now(migrated_db) - clock.now()) < CLOSE
    # a process the test starts (a CLI run) reads the same clock
    out = subprocess.run(
        [sys.executable, "-c", "from flows.core import clock; print(clock.now().isoformat())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert abs(datetime.fromisoformat(out.stdout.strip()) - clock.now()) < CLOSE


def test_a_test_can_move_both_clocks(calendar_clock: CalendarClock, migrated_db: Database) -> None:
    elsewhere = datetime(2031, 6, 15, 12, 0, tzinfo=UTC)
    calendar_clock.move_to(elsewhere)
    assert abs(clock.now() - elsewhere) < CLOSE
    assert abs(_db_now(migrated_db) - elsewhere) < CLOSE
    calendar_clock.move_to(calendar_clock.instant)
    assert abs(_db_now(migrated_db) - calendar_clock.instant) < CLOSE


@pytest.mark.calendar(once=True)
@pytest.mark.parametrize("shift_days", [-400, 400])
def test_server_timeouts_fire_on_a_moved_clock(
    calendar_clock: CalendarClock, migrated_db: Database, shift_days: int
) -> None:
    """lock_timeout and statement_timeout are timed by the clock the shim moves: a shim that let
    them drift (libfaketime does, see .ci/clock/pgtender_clock.c) would hang the DDL retries."""
    calendar_clock.move_to(calendar_clock.instant + timedelta(days=shift_days))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with migrated_db.connect(autocommit=False) as conn:
            conn.execute("LOCK TABLE learning_events IN ACCESS EXCLUSIVE MODE")
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with migrated_db.connect() as conn:
            conn.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                conn.execute("SELECT count(*) FROM learning_events")
            conn.execute("SET lock_timeout = 0")
            conn.execute("SET statement_timeout = '200ms'")
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(10)")
    finally:
        release.set()
        holder.join()


@pytest.mark.calendar(once=True)
@pytest.mark.parametrize(
    ("instant", "outcome"),
    [("2027-01-01T00:00:30Z", "1 failed"), ("2027-01-20T12:00:00Z", "1 passed")],
)
def test_the_matrix_catches_a_date_dependent_test(
    calendar_clock: CalendarClock, instant: str, outcome: str, tmp_path: Path
) -> None:
    """tests/calendar_canary.py assumes, like the retention test of issue 10 did, that the day of the
    month is late enough: on the 1st it fails, on the 20th it passes."""
    env = {**os.environ, "PGTENDER_TEST_INSTANT": instant}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            # a base of its own: a session without one resets /tmp/pytest-of-<user> to 0700, and the
            # embedded servers other tests run there as the system user pgserver (under root) then
            # lose their way to their data (one PANICked mid-initdb: "pg_control: Permission denied")
            f"--basetemp={tmp_path / 'canary'}",
            "tests/calendar_canary.py",
        ],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert outcome in run.stdout, run.stdout[-2000:]
    if outcome == "1 failed":
        assert "learning_events_default" in run.stdout
