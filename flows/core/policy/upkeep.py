"""Policy section of the ``upkeep`` job (``[upkeep]``, validated by pydantic, strict).

TOML shape (every key optional)::

    [upkeep]
    schema_name = "public"
    include = []                    # tables (names; a partitioned table covers its partitions);
    exclude = ["big_audit_log"]     # empty include: every table of the schema
    dry_run = false                 # report only, never ANALYZE or rebuild
    lock_timeout_ms = 1000          # every ANALYZE / REINDEX waits at most this long for a lock
    attempts = 5                    # tries per statement (backoff with jitter in between)
    rebuild_wal_compression = "zstd" # a rebuild's WAL: server | off | pglz | lz4 | zstd (if allowed)

    [upkeep.window]                 # rebuilds (REINDEX CONCURRENTLY) only inside this window
    start = "00:30"                 # local wall time, HH:MM; the daily run starts here
    end = "04:30"                   # may be earlier than start: the window crosses midnight
    timezone = "UTC"

    [upkeep.thresholds]
    analyze_change_fraction = 0.1   # rows changed in a parent's partitions / its rows
    bloat_pct = 40.0                # rebuild an index above this estimated bloat
    min_index_mb = 16.0             # smaller indexes are never estimated nor rebuilt
    unused_days = 30                # no scans for this long: reported (never dropped)
    dead_tuple_ratio = 0.2          # dead / (live + dead) above this: autovacuum is behind
    dead_tuples_min = 1000          # fewer dead tuples than this never count
    vacuum_age_hours = 168          # vacuum due and none for this long: autovacuum is behind
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.core.policy.partitions import DdlRetry

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MAX_NAME_BYTES = 63


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def parse_hhmm(text: str) -> time:
    """``"04:30"`` -> ``time(4, 30)``; ValueError for anything else."""
    match = _HHMM.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a wall time HH:MM (00:00 to 23:59)")
    return time(int(match.group(1)), int(match.group(2)))


class UpkeepWindow(_Strict):
    """When rebuilds may run: every day from ``start`` to ``end``, local time of ``timezone``."""

    start: str = "00:30"
    end: str = "04:30"
    timezone: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _wall_time(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _opens(self) -> UpkeepWindow:
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start}: the window never opens")
        return self

    @property
    def start_time(self) -> time:
        return parse_hhmm(self.start)

    @property
    def end_time(self) -> time:
        return parse_hhmm(self.end)

    @property
    def cron(self) -> str:
        """The daily schedule: at the window's start, read in ``timezone``."""
        start = self.start_time
        return f"{start.minute} {start.hour} * * *"

    def describe(self) -> str:
        return f"{self.start}-{self.end} {self.timezone}"


class UpkeepThresholds(_Strict):
    """When upkeep acts or reports; none may be negative."""

    analyze_change_fraction: Annotated[float, Field(ge=0, le=1000)] = 0.1
    bloat_pct: Annotated[float, Field(ge=0, lt=100)] = 40.0
    min_index_mb: Annotated[float, Field(ge=0, le=10_000_000)] = 16.0
    unused_days: Annotated[int, Field(ge=0, le=3650)] = 30
    dead_tuple_ratio: Annotated[float, Field(ge=0, le=1)] = 0.2
    dead_tuples_min: Annotated[int, Field(ge=0)] = 1000
    vacuum_age_hours: Annotated[float, Field(ge=0, le=87_600)] = 168.0


class UpkeepPolicy(DdlRetry):
    """``[upkeep]``: what the upkeep job looks at, when it may rebuild, and its thresholds."""

    schema_name: str = "public"
    include: Annotated[tuple[str, ...], Field(strict=False)] = ()
    exclude: Annotated[tuple[str, ...], Field(strict=False)] = ()
    dry_run: bool = False
    window: UpkeepWindow = UpkeepWindow()
    thresholds: UpkeepThresholds = UpkeepThresholds()
    # A rebuild is cancelled (and its half-built copy dropped) after this long, or when the window
    # closes, whichever comes first.
    rebuild_statement_timeout_ms: Annotated[int, Field(gt=0, le=86_400_000)] = 3_600_000
    # Parallel workers of one rebuild: 0 keeps it on one core beside the application's writers.
    rebuild_parallel_workers: Annotated[int, Field(ge=0, le=64)] = 0
    # The rebuild's WAL (every page of the new index as a full-page image) compressed with this
    # method (pglz where the server was built without it); "server" leaves the server's
    # wal_compression. Needs the right to SET it (a superuser, or GRANT SET ON PARAMETER
    # wal_compression): without it the server's setting stays.
    rebuild_wal_compression: Literal["server", "off", "pglz", "lz4", "zstd"] = "zstd"
    # Every read of the survey (catalog, statistics views) runs under this statement timeout.
    probe_statement_timeout_ms: Annotated[int, Field(gt=0, le=86_400_000)] = 30_000

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, value: str) -> str:
        return _check_name(value, "schema")

    @field_validator("include", "exclude")
    @classmethod
    def _tables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _check_name(name, "table")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> UpkeepPolicy:
        both = sorted(set(self.include) & set(self.exclude))
        if both:
            raise ValueError(f"table {both[0]!r} is both included and excluded")
        return self


def _check_name(name: str, what: str) -> str:
    if not name or "\x00" in name:
        raise ValueError(f"{what} name must be non-empty")
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise ValueError(f"{what} name {name!r} is longer than PostgreSQL's 63 bytes")
    return name
