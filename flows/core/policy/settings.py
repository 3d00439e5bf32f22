"""Settings (environment) and policy (TOML file), validated; the one place that builds the DSN.

Environment (pydantic-settings, prefix ``PGTENDER_``):
  PGTENDER_DATABASE_URL   the database pgtender tends; unset -> embedded PostgreSQL
  PGTENDER_CONFIG         path of the policy file (TOML), optional
  PGTENDER_STATE_DIR      where the embedded server, reports and Data Docs live
  PGTENDER_SMTP_*         SMTP server of the weekly report (HOST, PORT, TLS, USERNAME, PASSWORD)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.core import masking
from flows.core.errors import ConfigError
from flows.core.policy.alerts import AlertsPolicy
from flows.core.policy.archives import join
from flows.core.policy.fleet import OVERRIDABLE, FleetPolicy, TargetSpec, check_target_name, deep_merge
from flows.core.policy.partitions import PartitionsPolicy, RetentionPolicy
from flows.core.policy.upkeep import UpkeepPolicy


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pgtender"


class Settings(BaseSettings):
    """Process environment. Secrets stay in SecretStr and are only unwrapped by ``dsn()``."""

    model_config = SettingsConfigDict(env_prefix="PGTENDER_", extra="ignore", frozen=True)

    database_url: SecretStr | None = None
    config: Path | None = None
    state_dir: Path = Field(default_factory=default_state_dir)
    application_name: str = "pgtender"
    # SMTP for the weekly report (PGTENDER_SMTP_HOST, ..._PORT, ..._TLS, ..._USERNAME, ..._PASSWORD).
    smtp_host: str = "localhost"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0

    @field_validator("config", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        # PGTENDER_CONFIG="" (a cleared variable, a template's empty default) means no file, not ".".
        if isinstance(value, str) and not value.strip():
            return None
        return value


class _Strict(BaseModel):
    # strict: `premake = "3"` or `enabled = "yes"` is an error, like any other wrong type; a TOML
    # array still fills a tuple (Lax below) and an integer a float.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Lax = Field(strict=False)
Names = Annotated[tuple[str, ...], Lax]


PositiveMs = Annotated[int, Field(gt=0, le=86_400_000)]


class DatabasePolicy(_Strict):
    statement_timeout_ms: PositiveMs = 300_000
    lock_timeout_ms: PositiveMs = 2_000
    pool_min_size: Annotated[int, Field(ge=0, le=32)] = 0
    pool_max_size: Annotated[int, Field(ge=1, le=64)] = 4


class CapacityPolicy(_Strict):
    # Tables whose planner estimate is below this are counted exactly; above it the estimate is used.
    exact_count_max_rows: Annotated[int, Field(ge=0)] = 1_000_000
    # Growth and projection (issue 4): a robust (Theil-Sen) fit over this much recorded history.
    history_days: Annotated[int, Field(ge=2, le=3650)] = 90
    min_history_points: Annotated[int, Field(ge=2, le=1000)] = 3
    projection_horizon_days: Annotated[int, Field(ge=1, le=3650)] = 365
    # Thresholds the projection is computed against (bytes of total relation size, incl. TOAST and
    # indexes). table_max_bytes overrides the default per table name.
    database_max_bytes: Annotated[int, Field(gt=0)] = 200 * 1024**3
    table_default_max_bytes: Annotated[int, Field(gt=0)] = 50 * 1024**3
    table_max_bytes: dict[str, Annotated[int, Field(gt=0)]] = {}
    table_max_rows: dict[str, Annotated[int, Field(gt=0)]] = {}


class ViewsPolicy(_Strict):
    """Materialized views the ``views`` job refreshes (issue 4)."""

    schema_name: str = "public"
    # Empty include: every materialized view of the schema. Names, not patterns.
    include: Names = ()
    exclude: Names = ()
    # Trailing UTC days (today included) a scheduled run recomputes in each rollup table; events
    # that arrive later than that reach the rollup through `pgtender backfill --jobs views`.
    rollup_days: Annotated[int, Field(ge=1, le=366)] = 2
    # A plain (non-concurrent) refresh takes ACCESS EXCLUSIVE: never wait long for it.
    lock_timeout_ms: PositiveMs = 5_000
    statement_timeout_ms: PositiveMs = 600_000


class HealthPolicy(_Strict):
    """Thresholds of the ``health`` probes; the first five are the seed README's alerting thresholds."""

    event_lag_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    accuracy_drop_max_pct: Annotated[float, Field(gt=0, le=100)] = 20.0
    accuracy_metrics: Names = ("accuracy",)
    query_slowdown_max_ratio: Annotated[float, Field(gt=0)] = 2.0
    quality_score_min_pct: Annotated[float, Field(ge=0, le=100)] = 90.0
    resource_utilization_max_pct: Annotated[float, Field(gt=0, le=100)] = 85.0
    # How far back the probes over sampled tables look.
    lookback_minutes: Annotated[int, Field(ge=1, le=10_080)] = 15
    query_lookback_minutes: Annotated[int, Field(ge=1, le=10_080)] = 60
    query_baseline_days: Annotated[int, Field(ge=1, le=365)] = 7
    # PostgreSQL health (this database's sessions only).
    long_transaction_max_seconds: Annotated[float, Field(ge=0)] = 300.0
    idle_in_transaction_max_seconds: Annotated[float, Field(ge=0)] = 60.0
    lock_wait_max_seconds: Annotated[float, Field(ge=0)] = 30.0
    xid_age_warning: Annotated[int, Field(gt=0, le=2_147_483_647)] = 500_000_000
    xid_age_max: Annotated[int, Field(gt=0, le=2_147_483_647)] = 1_200_000_000
    replication_lag_max_seconds: Annotated[float, Field(ge=0)] = 60.0
    # Rows in a DEFAULT partition: more than max_rows warn; more than page_rows, or rows there for
    # more than page_hours (longer than one daily partitions run can explain), fail and page.
    default_partition_max_rows: Annotated[int, Field(ge=0)] = 0
    default_partition_page_rows: Annotated[int, Field(ge=1)] = 10_000
    default_partition_page_hours: Annotated[float, Field(gt=0, le=8_760)] = 26.0
    default_partition_count_cap: Annotated[int, Field(ge=1)] = 100_000
    # Every partitioned table must have partitions covering at least this many intervals ahead.
    partition_min_intervals_ahead: Annotated[float, Field(ge=0)] = 1.0
    # A job is late when its last success is older than grace_factor x its schedule's period.
    watchdog_grace_factor: Annotated[float, Field(ge=1, le=100)] = 1.5
    watchdog_ignore: Names = ()
    # failed runs of pg_cron jobs still scheduled (during a takeover) are reported over this window
    cron_lookback_minutes: Annotated[int, Field(ge=1, le=10_080)] = 60
    # Cheapness: per-probe timeouts, and the database-time budget of the whole run (warned above).
    probe_statement_timeout_ms: PositiveMs = 5_000
    probe_lock_timeout_ms: PositiveMs = 200
    budget_ms: PositiveMs = 1_000

    @model_validator(mode="after")
    def _pages_above_the_warning(self) -> HealthPolicy:
        if self.default_partition_page_rows <= self.default_partition_max_rows:
            raise ValueError(
                f"default_partition_page_rows ({self.default_partition_page_rows}) must be above"
                f" default_partition_max_rows ({self.default_partition_max_rows})"
            )
        return self


QualityWeight = Annotated[float, Field(ge=0, le=1000)]
QualityPercent = Annotated[float, Field(ge=0, le=100)]
# An expectation's severity: "error" fails its suite whatever the score, "warn" only lowers it.
QualitySeverity = Literal["error", "warn"]


class QualitySuitePolicy(_Strict):
    """Options of one quality suite (``[quality.suites.<name>]``)."""

    enabled: bool = True
    threshold: QualityPercent | None = None  # the suite's passing score; None = quality.threshold
    weights: dict[str, QualityWeight] = Field(default_factory=dict)  # expectation key -> weight
    # expectation key -> severity, over the suite's own (checks/*.py); row_count_in_band is the volume band
    severity: dict[str, QualitySeverity] = Field(default_factory=dict)
    sample_size: Annotated[int, Field(ge=0, le=1000)] | None = None


class QualityPolicy(_Strict):
    # A suite whose weighted percent of passed expectations is below this fails the run.
    threshold: QualityPercent = 90.0
    # Offending values/keys kept per failed expectation (fetched only for failures).
    sample_size: Annotated[int, Field(ge=0, le=1000)] = 20
    # Weight per GX expectation type (e.g. expect_column_values_to_be_unique = 3); default: the suite's.
    weights: dict[str, QualityWeight] = Field(default_factory=dict)
    # Volume band: median rows of the previous N days x [low, high].
    volume_lookback_days: Annotated[int, Field(ge=1, le=90)] = 7
    volume_low_ratio: Annotated[float, Field(ge=0, le=1)] = 0.5
    volume_high_ratio: Annotated[float, Field(ge=1, le=1000)] = 2.0
    data_docs: bool = True
    # Data Docs keep the validations of runs from the last N days (older ones and their pages go).
    data_docs_days: Annotated[int, Field(ge=1, le=3660)] = 31
    suites: dict[str, QualitySuitePolicy] = Field(default_factory=dict)


def _valid_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


class ReportPolicy(_Strict):
    """The weekly quality report (``[report]``); SMTP credentials live in the environment."""

    recipients: Annotated[tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...], Lax] = ()
    from_address: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")] = "pgtender@localhost"
    # IANA zone of the report's schedule (Mon 08:00) and of its week boundaries.
    timezone: Annotated[str, AfterValidator(_valid_timezone)] = "UTC"
    subject_prefix: Annotated[str, Field(max_length=100)] = "[pgtender]"
    send_retries: Annotated[int, Field(ge=0, le=20)] = 3
    send_retry_delay_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    failing_checks_max: Annotated[int, Field(ge=1, le=1000)] = 50


class BackfillPolicy(_Strict):
    """On-call backfill (``pgtender backfill``): how far it may reach and how it is chunked."""

    # Longest range (days, both ends included) a backfill accepts without --force.
    max_days: Annotated[int, Field(ge=1, le=3650)] = 92
    # Days per Prefect task: the orchestration cost is paid per chunk, not per day.
    chunk_days: Annotated[int, Field(ge=1, le=366)] = 15
    # How long one (job, day) waits for a scheduled run of the same job to finish before it is
    # reported busy (and left for the next resume).
    lock_wait_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0


class Policy(_Strict):
    """The policy file. Unknown keys are rejected so that a typo never silently means 'default'."""

    database: DatabasePolicy = DatabasePolicy()
    capacity: CapacityPolicy = CapacityPolicy()
    views: ViewsPolicy = ViewsPolicy()
    health: HealthPolicy = HealthPolicy()
    partitions: PartitionsPolicy = PartitionsPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    quality: QualityPolicy = QualityPolicy()
    report: ReportPolicy = ReportPolicy()
    backfill: BackfillPolicy = BackfillPolicy()
    alerts: AlertsPolicy = AlertsPolicy()
    upkeep: UpkeepPolicy = UpkeepPolicy()
    # The databases pgtender tends (issue 13). Empty: PGTENDER_DATABASE_URL is the target `default`.
    fleet: FleetPolicy = FleetPolicy()
    targets: dict[str, TargetSpec] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _target_names(cls, value: dict[str, TargetSpec]) -> dict[str, TargetSpec]:
        for name in value:
            check_target_name(name)
        return value

    # target name -> that target's policy (the file's sections with its overrides), by load_policy
    _per_target: dict[str, Policy] = PrivateAttr(default_factory=dict)

    def for_target(self, name: str) -> Policy:
        """The policy of one target: this file with the target's overrides (validated at load)."""
        return self._per_target.get(name, self)


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    where = ".".join([prefix, *(str(p) for p in first["loc"])] if prefix else [str(p) for p in first["loc"]])
    return f"{where or '(top level)'}: {first['msg']}"


def load_policy(path: Path | None) -> Policy:
    """Read and validate the TOML policy file; ``None`` means all defaults."""
    if path is None:
        return Policy()
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config file {path}: {_first_error(exc)}") from None
    # Each target's overrides are merged into the file's sections and validated as strictly as the
    # file itself: an unknown key under [targets.NAME.health] is the same error as under [health].
    base = {k: v for k, v in raw.items() if k in OVERRIDABLE}
    for name, spec in policy.targets.items():
        raw_target = deep_merge(base, spec.overrides())
        dump_dir = raw_target.get("retention", {}).get("dump_dir")
        if isinstance(dump_dir, str) and "dump_dir" not in (spec.retention or {}):
            # one dump directory per target: two databases' partitions share table names
            raw_target["retention"] = {**raw_target["retention"], "dump_dir": join(dump_dir, name)}
        try:
            merged = Policy.model_validate(raw_target)
        except ValidationError as exc:
            raise ConfigError(f"config file {path}: {_first_error(exc, f'targets.{name}')}") from None
        policy._per_target[name] = merged
    return policy


def load_settings() -> Settings:
    """The environment. Read again whenever a variable it depends on changes; parsed once per
    distinct environment (parsing costs ~1 ms a call)."""
    return _settings_for(_environment_key())


def _environment_key() -> tuple[tuple[str, str], ...]:
    """What Settings reads: the PGTENDER_ variables (any case) and what the default state dir uses."""
    return tuple(
        sorted(
            (k, v)
            for k, v in os.environ.items()
            if k.upper().startswith("PGTENDER_") or k in ("XDG_STATE_HOME", "HOME")
        )
    )


@lru_cache(maxsize=8)
def _settings_for(_key: tuple[tuple[str, str], ...]) -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"environment PGTENDER_{where.upper()}: {first['msg']}") from None


@lru_cache(maxsize=8)
def _policy_cached(path: Path | None, mtime: float) -> Policy:
    return load_policy(path)


def current_policy(settings: Settings | None = None) -> Policy:
    """The policy file of this process (all defaults without one), re-read when the file changes.
    A target's own policy (with its overrides) is ``Policy.for_target(name)``."""
    settings = settings or load_settings()
    path = settings.config
    mtime = path.stat().st_mtime if path is not None and path.exists() else 0.0
    return _policy_cached(path, mtime)


def dsn(settings: Settings, *, embedded: Callable[[Path], str] | None = None) -> str:
    """The one place that turns settings into a connection string: ``PGTENDER_DATABASE_URL`` when
    set; otherwise ``embedded(state_dir)`` (the edge starts the embedded server on demand).
    The result holds secrets: pass it to psycopg, never to a log."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value().strip()
        if not url:
            raise ConfigError("PGTENDER_DATABASE_URL is set but empty")
        masking.register_dsn(url)
        reason = masking.malformed_url(url)
        if reason is not None:
            raise ConfigError(f"PGTENDER_DATABASE_URL is malformed: {reason}")
        return url
    if embedded is None:
        raise ConfigError("no database: set PGTENDER_DATABASE_URL (or run pgtender up for an embedded one)")
    return embedded(settings.state_dir)
