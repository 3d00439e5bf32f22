"""Policy sections of the ``partitions`` and ``retention`` jobs (validated by pydantic).

TOML shape (every key optional; the seed's tables have defaults that a file overrides key by key)::

    [partitions]
    lock_timeout_ms = 1000          # every DDL statement waits at most this long for its lock
    attempts = 5                    # tries per DDL transaction (backoff with jitter in between)

    [partitions.tables.learning_events]
    interval = "month"              # day | week | month
    premake = 3                     # future partitions kept ahead of the current one
    retention = "12 months"         # or "none"; N day(s) | week(s) | month(s)
    archive = "keep"                # keep | dump | drop

    [retention]
    archive_schema = "pgtender_archive"
    dump_dir = "/var/lib/pgtender/archive"   # or "s3://bucket/prefix" (then [retention.storage])
    max_seconds = 600               # time budget of the batched DELETEs per run

    [retention.storage]             # only for an object store (dump_dir = "s3://...")
    endpoint_url = "http://127.0.0.1:8333"   # an S3-compatible server; unset: AWS
    key_env = "PGTENDER_S3_KEY"     # access key id and secret key from these environment
    secret_env = "PGTENDER_S3_SECRET"  # variables (or key_secret/secret_secret: Secret blocks)

    [retention.plain.query_performance_logs]
    column = "logged_at"
    retention = "30 days"
    batch_size = 5000

Checks that need the database (the table exists, is RANGE-partitioned on a time column) run at the
start of each flow, before anything changes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.core.policy.archives import ArchiveStorage, Location, check_location

Interval = Literal["day", "week", "month"]
ArchiveMode = Literal["keep", "dump", "drop"]

_AGE = re.compile(r"^\s*(\d+)\s*(day|week|month)s?\s*$", re.IGNORECASE)
_DAYS = {"day": 1, "week": 7, "month": 30}
_MAX_NAME_BYTES = 63


class _Strict(BaseModel):
    # strict: `premake = "3"` is rejected like any other wrong type (a TOML int still fills a float)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def parse_age(text: str) -> tuple[int, str]:
    """``"12 months"`` -> ``(12, "month")``; raises ValueError for anything else."""
    match = _AGE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not an age like '90 days', '8 weeks' or '12 months' (N > 0)")
    return int(match.group(1)), match.group(2).lower()


def age_days(text: str) -> int:
    """Approximate length in days (a month counts 30) — for comparing policies only."""
    n, unit = parse_age(text)
    return n * _DAYS[unit]


def _check_name(name: str, what: str) -> str:
    if not name or "\x00" in name:
        raise ValueError(f"{what} name must be non-empty")
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise ValueError(f"{what} name {name!r} is longer than PostgreSQL's 63 bytes")
    return name


class DdlRetry(_Strict):
    """How DDL waits for locks: ``lock_timeout`` per try, ``attempts`` tries, backoff with jitter."""

    lock_timeout_ms: Annotated[int, Field(gt=0, le=600_000)] = 1_000
    attempts: Annotated[int, Field(ge=1, le=100)] = 5
    backoff_base_ms: Annotated[int, Field(ge=0, le=600_000)] = 200
    backoff_max_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 5_000
    # Prefect task retries on top (transient errors only: connection lost, locks exhausted).
    task_retries: Annotated[int, Field(ge=0, le=10)] = 1


class TablePolicy(_Strict):
    """One RANGE-partitioned table: how it is cut, how far ahead, how long it is kept."""

    namespace: str = "public"
    enabled: bool = True
    interval: Interval = "month"
    premake: Annotated[int, Field(ge=1, le=1000)] = 3
    retention: str | None = None
    archive: ArchiveMode = "keep"
    # DEFAULT rows older than this (when no retention is set) are left in DEFAULT and reported.
    rescue_max_age: str = "24 months"

    @field_validator("retention", mode="before")
    @classmethod
    def _none_means_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"none", ""}:
            return None
        return value

    @field_validator("retention", "rescue_max_age")
    @classmethod
    def _valid_age(cls, value: str | None) -> str | None:
        if value is not None:
            parse_age(value)
        return value

    @model_validator(mode="after")
    def _retention_covers_premake(self) -> TablePolicy:
        interval_days = _DAYS[self.interval]
        if self.retention is not None:
            kept = age_days(self.retention)
            if kept < interval_days:
                raise ValueError(
                    f"retention {self.retention!r} is shorter than one {self.interval}: "
                    "the current partition would expire"
                )
            if kept < self.premake * interval_days:
                raise ValueError(
                    f"retention {self.retention!r} is shorter than premake ({self.premake} {self.interval}s)"
                )
        if age_days(self.rescue_max_age) < interval_days:
            raise ValueError(f"rescue_max_age {self.rescue_max_age!r} is shorter than one {self.interval}")
        return self


class PlainTablePolicy(_Strict):
    """A non-partitioned time-stamped table: batched DELETE of rows older than ``retention``."""

    namespace: str = "public"
    enabled: bool = True
    column: str
    retention: str
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 5_000

    @field_validator("retention")
    @classmethod
    def _valid_age(cls, value: str) -> str:
        parse_age(value)
        return value


DEFAULT_TABLES: dict[str, dict[str, Any]] = {
    "learning_events": {"interval": "month", "premake": 3, "retention": "12 months", "archive": "keep"},
    "system_performance_metrics": {
        "interval": "month",
        "premake": 3,
        "retention": "3 months",
        "archive": "drop",
    },
}

DEFAULT_PLAIN: dict[str, dict[str, Any]] = {
    "query_performance_logs": {"column": "logged_at", "retention": "30 days"},
    "llm_interactions": {"column": "created_at", "retention": "180 days"},
    "pgtender_operations": {"column": "started_at", "retention": "90 days"},
    "data_quality_checks": {"column": "checked_at", "retention": "90 days"},
}


def _merge(defaults: dict[str, dict[str, Any]], given: Any) -> Any:
    """The file overrides the defaults key by key; a table the defaults lack is added."""
    if given is None:
        return {k: dict(v) for k, v in defaults.items()}
    if not isinstance(given, dict):
        return given  # let pydantic report the type error
    merged: dict[str, Any] = {k: dict(v) for k, v in defaults.items()}
    for name, section in given.items():
        if isinstance(section, dict) and name in merged:
            merged[name] = {**merged[name], **section}
        else:
            merged[name] = section
    return merged


class PartitionsPolicy(DdlRetry):
    """``[partitions]``: DDL retry settings and the per-table policy (also read by retention)."""

    tables: dict[str, TablePolicy] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**data, "tables": _merge(DEFAULT_TABLES, data.get("tables"))}
        return data

    @field_validator("tables")
    @classmethod
    def _names(cls, value: dict[str, TablePolicy]) -> dict[str, TablePolicy]:
        for name, table in value.items():
            _check_name(name, "table")
            _check_name(table.namespace, "schema")
        return value

    def enabled_tables(self) -> dict[str, TablePolicy]:
        return {name: t for name, t in self.tables.items() if t.enabled}


class RetentionPolicy(DdlRetry):
    """``[retention]``: archive destinations, the time budget and the plain tables."""

    archive_schema: str = "pgtender_archive"
    # a path (local or a shared mount) or an fsspec URL (s3://bucket/prefix); default:
    # <PGTENDER_STATE_DIR>/archive. [retention.storage] says how an object store is reached.
    dump_dir: Location | None = None
    storage: ArchiveStorage = ArchiveStorage()
    max_seconds: Annotated[int, Field(gt=0, le=86_400)] = 600
    # drop mode: count the dropped rows exactly (a full scan) instead of the planner's estimate.
    exact_counts: bool = False
    plain: dict[str, PlainTablePolicy] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**data, "plain": _merge(DEFAULT_PLAIN, data.get("plain"))}
        return data

    @field_validator("archive_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        return _check_name(value, "archive schema")

    @field_validator("dump_dir")
    @classmethod
    def _dump_dir(cls, value: str | None) -> str | None:
        return None if value is None else check_location(value)

    @field_validator("plain")
    @classmethod
    def _names(cls, value: dict[str, PlainTablePolicy]) -> dict[str, PlainTablePolicy]:
        for name, table in value.items():
            _check_name(name, "table")
            _check_name(table.column, "column")
        return value

    def enabled_plain(self) -> dict[str, PlainTablePolicy]:
        return {name: t for name, t in self.plain.items() if t.enabled}
