"""The one clock. Jobs take "now" from the database they tend (``db_now``), so a job and the rows it
reads agree on the instant even when the two machines' clocks drift; code with no connection at
hand (validating a CLI argument, naming a file) asks ``now()``.

``now()`` is injectable: ``travel(...)`` shifts it (tests move the Python clock together with
PostgreSQL's, see tests/calendar.py), and ``PGTENDER_CLOCK_OFFSET_SECONDS`` shifts a whole process
(a drill, or a CLI subprocess started by a test while the database runs on a moved clock).
Nothing is read at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from flows.core.errors import ConfigError

_shift: timedelta | None = None
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _offset() -> timedelta:
    if _shift is not None:
        return _shift
    raw = os.environ.get("PGTENDER_CLOCK_OFFSET_SECONDS", "").strip()
    if not raw:
        return timedelta(0)
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        raise ValueError(f"PGTENDER_CLOCK_OFFSET_SECONDS={raw!r} is not a number of seconds") from None


def now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC) + _offset()


def today() -> date:
    """Today's UTC date."""
    return now().date()


@contextmanager
def travel(to: datetime | timedelta) -> Iterator[None]:
    """Shift ``now()`` so that it reads ``to`` (an aware instant) or moves by ``to`` (a timedelta)."""
    global _shift  # noqa: PLW0603 - the process clock is process-wide by nature
    previous = _shift
    if isinstance(to, datetime):
        if to.tzinfo is None:
            raise ValueError("travel() needs an aware datetime")
        _shift = to - datetime.now(UTC)
    else:
        _shift = to
    try:
        yield
    finally:
        _shift = previous


def db_now(conn: psycopg.Connection[Any]) -> datetime:
    """The database's ``now()`` (its transaction's start), aware, in UTC, to the microsecond."""
    row = conn.execute("SELECT now()").fetchone()
    if row is None:  # pragma: no cover - SELECT now() always returns a row
        raise RuntimeError("SELECT now() returned no row")
    moment: datetime = row[0]
    return moment.astimezone(UTC)


def parse_day(value: object, field: str) -> date:
    """A UTC day given as ``YYYY-MM-DD`` (or a ``date``): the one day parser of every job, CLI and
    form. A ConfigError names the field as the form and the CLI call it (``start``, ``day``)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = str(value).strip() if value is not None else ""
    if not _DAY.match(text):
        raise ConfigError(f"{field} must be a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{field} {value!r} is not a valid calendar date") from None
