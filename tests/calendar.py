"""The calendar matrix: run tests with PostgreSQL's clock and pgtender's clock on a chosen instant.

Date logic takes ``now`` as a parameter and is tested at every instant of ``MATRIX`` in
milliseconds (tests/test_dates*.py, parametrized with ``instants()``). What only a moved clock can
show (PostgreSQL's ``now()`` deciding: migration 0005's partitions around the instant, the DEFAULT
rescue, a run crossing midnight) is marked ``@pytest.mark.calendar`` and runs in a calendar session:

- ``PGTENDER_TEST_INSTANT=all``: one session for the whole matrix. Each ``calendar`` test runs once
  per instant (``[@2027-01-01T00:00:30Z]`` in its id), ``@pytest.mark.calendar(once=True)`` tests
  and the rest once, on the first instant. Template databases are built once per instant.
- ``PGTENDER_TEST_INSTANT=2026-12-31T23:59:30Z`` (any ISO instant with a zone): every test of the
  session on that instant.

Before every test (and before a template database is built) its instant is put on both clocks, so
each test starts at that instant and its clock then runs on in real time:

- PostgreSQL: the server must be the "clock" cluster of ``.ci/setup-pg-clock.sh`` (its backends add
  the offset in ``PGTENDER_CLOCK_FILE`` to every wall-clock read). The offset file is replaced and
  ``SELECT now()`` polled until the server reads the instant; a server that does not follow the
  file stops the session with one line saying so.
- Python: ``flows.core.clock.travel`` by the very same offset, and ``PGTENDER_CLOCK_OFFSET_SECONDS``
  for the subprocesses a test starts (a CLI run).

Without ``PGTENDER_TEST_INSTANT`` nothing moves: the tests run on the real clock (``calendar`` tests
too, once). The fixture ``calendar_clock`` gives a test its instant and a way to move both clocks
again; tests that use it are deselected on the real clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from flows.core import clock

INSTANT_ENV = "PGTENDER_TEST_INSTANT"
ALL = "all"  # PGTENDER_TEST_INSTANT=all: the whole matrix in one session
CLOCK_FILE_ENV = "PGTENDER_CLOCK_FILE"
DEFAULT_CLOCK_FILE = "/var/lib/postgresql/pgtender-clock/offset"
OFFSET_ENV = "PGTENDER_CLOCK_OFFSET_SECONDS"
HOLDER_ENV = "PGTENDER_CLOCK_SESSION_PID"  # the process whose session holds the cluster's clock
TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Instant:
    """An instant of the matrix and the date logic it breaks."""

    at: datetime
    why: str

    @property
    def id(self) -> str:
        return f"@{self.at:%Y-%m-%dT%H:%M:%SZ}"


# Each instant is a day where date logic breaks: a test starts there and its clock runs on.
MATRIX: tuple[Instant, ...] = (
    Instant(
        datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC), "the 1st just after midnight: yesterday is last year's"
    ),
    Instant(
        datetime(2027, 4, 30, 23, 59, 30, tzinfo=UTC),
        "the last day of a 30-day month: a run crosses into May",
    ),
    Instant(datetime(2028, 2, 29, 12, 0, tzinfo=UTC), "a leap day"),
    Instant(
        datetime(2027, 2, 28, 23, 59, 30, tzinfo=UTC),
        "the last day of a common February, crossing into March",
    ),
    Instant(datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC), "New Year's Eve: a new year and ISO week-year"),
    Instant(datetime(2027, 3, 28, 0, 59, 30, tzinfo=UTC), "Europe/Berlin springs forward at 01:00 UTC"),
    Instant(datetime(2027, 10, 31, 0, 59, 30, tzinfo=UTC), "Europe/Berlin falls back at 01:00 UTC"),
)


def instants() -> pytest.MarkDecorator:
    """``@calendar.instants()`` on a test taking ``now``: one case per instant of the matrix."""
    return pytest.mark.parametrize("now", [i.at for i in MATRIX], ids=[i.id for i in MATRIX])


def parse_instant(text: str) -> datetime:
    """``2026-12-31T23:59:30Z`` -> an aware datetime; one-line ValueError for anything else."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{INSTANT_ENV}={text!r} is not an ISO instant like 2026-12-31T23:59:30Z (or {ALL!r})"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{INSTANT_ENV}={text!r} has no zone (add Z or +01:00)")
    return moment.astimezone(UTC)


def matrix_session() -> bool:
    """``PGTENDER_TEST_INSTANT=all``: every instant of the matrix in this one session."""
    return os.environ.get(INSTANT_ENV, "").strip() == ALL


_current: datetime | None = None  # the instant of the running test (a matrix session)


def test_instant() -> datetime | None:
    """The instant the running test started on, or None (real clock)."""
    raw = os.environ.get(INSTANT_ENV, "").strip()
    if not raw:
        return None
    if raw == ALL:
        return _current or MATRIX[0].at
    return parse_instant(raw)


test_instant.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def session_today() -> date:
    """The UTC date a session starts on (its first instant's, or today's): for module-level
    constants. A test that needs "now" asks ``flows.core.clock`` (or the database) while it runs."""
    instant = test_instant()
    return (instant or datetime.now(UTC)).date()


@dataclass
class _Clocks:
    server_dsn: str
    clock_file: Path
    shift: timedelta = timedelta(0)
    travelling: ExitStack = field(default_factory=ExitStack)
    lock_fd: int | None = None


_state: _Clocks | None = None


def _write_offset(path: Path, seconds: float) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{seconds:+.6f}\n", encoding="utf-8")
    tmp.replace(path)


def _server_now(dsn: str) -> datetime:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    moment: datetime = row[0]
    return moment.astimezone(UTC)


def move_clock(instant: datetime) -> None:
    """Put PostgreSQL's clock and pgtender's clock on ``instant`` (both keep running from there)."""
    if _state is None:
        raise RuntimeError(f"move_clock needs a calendar session ({INSTANT_ENV} set)")
    shift = instant.astimezone(UTC) - datetime.now(UTC)
    seconds = round(shift.total_seconds(), 6)
    _write_offset(_state.clock_file, seconds)
    _state.shift = timedelta(seconds=seconds)
    # The Python side: the same offset, in this process and in the processes a test starts.
    _state.travelling.close()
    _state.travelling.enter_context(clock.travel(_state.shift))
    os.environ[OFFSET_ENV] = f"{seconds:.6f}"
    deadline = time.monotonic() + 5.0
    while True:
        seen = _server_now(_state.server_dsn)
        expected = datetime.now(UTC) + _state.shift
        if abs(seen - expected) <= TOLERANCE:
            return
        if time.monotonic() > deadline:
            pytest.exit(
                f"calendar session: the test server reads {seen.isoformat()} where {expected.isoformat()}"
                f" was set; its clock does not follow {_state.clock_file} (use .ci/setup-pg-clock.sh)",
                returncode=3,
            )
        time.sleep(0.02)


def reset_clock() -> None:
    """Back to the running test's instant (calendar session), else nothing."""
    instant = test_instant()
    if instant is not None and _state is not None:
        move_clock(instant)


def start(server_dsn: str | None) -> None:
    """Called once with the test server: in a calendar session, takes hold of its clock."""
    global _state  # noqa: PLW0603 - one clock per session
    instant = test_instant()
    if instant is None or _state is not None:
        return
    if server_dsn is None:
        pytest.exit(
            f"calendar session: {INSTANT_ENV} needs PGTENDER_TEST_DATABASE_URL on the clock cluster"
            " (.ci/setup-pg-clock.sh), not the embedded server",
            returncode=3,
        )
    _state = _Clocks(server_dsn, Path(os.environ.get(CLOCK_FILE_ENV) or DEFAULT_CLOCK_FILE))
    if not _state.clock_file.parent.is_dir():
        pytest.exit(
            f"calendar session: {_state.clock_file.parent} does not exist (run .ci/setup-pg-clock.sh)",
            returncode=3,
        )
    _hold_the_cluster(_state)
    move_clock(instant)


def _hold_the_cluster(state: _Clocks) -> None:
    """One calendar session at a time moves the cluster's clock: wait for another one to end. A
    session a test starts inside a calendar session (tests/test_calendar.py) borrows its parent's."""
    if os.environ.get(HOLDER_ENV) == str(os.getppid()):
        return
    path = state.clock_file.with_name("session.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, 0o666)  # whoever runs the next session may take it too
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"calendar session: waiting for another calendar session to end ({path})", file=sys.stderr)
        fcntl.flock(fd, fcntl.LOCK_EX)
    state.lock_fd = fd  # released when the process ends
    os.environ[HOLDER_ENV] = str(os.getpid())


def stop() -> None:
    """End of session: the server's clock back to real time, pgtender's clock unshifted."""
    global _state  # noqa: PLW0603
    if _state is None:
        return
    _write_offset(_state.clock_file, 0.0)
    _state.travelling.close()
    os.environ.pop(OFFSET_ENV, None)
    if _state.lock_fd is not None:
        os.close(_state.lock_fd)  # closing the descriptor releases the lock
        os.environ.pop(HOLDER_ENV, None)
    _state = None


@pytest.fixture(autouse=True)
def _calendar_instant(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test of a calendar session starts on its instant (the server is set up first)."""
    global _current  # noqa: PLW0603 - the running test's instant
    if test_instant() is not None:
        _current = getattr(request, "param", None) or (MATRIX[0].at if matrix_session() else None)
        request.getfixturevalue("server_dsn")
        reset_clock()
    yield


class CalendarClock:
    """What a test may do with the clocks in a calendar session."""

    @property
    def instant(self) -> datetime:
        instant = test_instant()
        assert instant is not None
        return instant

    def move_to(self, instant: datetime) -> None:
        move_clock(instant)


@pytest.fixture
def calendar_clock() -> CalendarClock:
    """The test's instant and ``move_to`` (tests using it only run in a calendar session)."""
    return CalendarClock()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A matrix session runs each ``calendar`` test once per instant (``once=True``: on the first)."""
    marker = metafunc.definition.get_closest_marker("calendar")
    if matrix_session() and marker is not None and not marker.kwargs.get("once", False):
        metafunc.parametrize(
            "_calendar_instant", [i.at for i in MATRIX], ids=[i.id for i in MATRIX], indirect=True
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip: CI fails on skips) what cannot run here: on the real clock the tests that
    move the clock; in a calendar session the tests on servers whose clock stays real."""
    calendar_session = test_instant() is not None

    def unfit(item: pytest.Item) -> bool:
        if calendar_session:
            return item.get_closest_marker("real_clock") is not None
        return "calendar_clock" in getattr(item, "fixturenames", ())

    keep = [item for item in items if not unfit(item)]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if unfit(item)])
        items[:] = keep
