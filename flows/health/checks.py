"""What every health probe shares"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg.errors

from flows.core.db import load_sql
from flows.core.engine.outcomes import CheckStatus

Conn = psycopg.Connection[tuple[Any, ...]]

PASSED, WARNING, FAILED, ERROR, SKIPPED = (
    CheckStatus.PASSED,
    CheckStatus.WARNING,
    CheckStatus.FAILED,
    CheckStatus.ERROR,
    CheckStatus.SKIPPED,
)


@dataclass(frozen=True)
class Context:
    now: datetime
    schema: str = "public"
    # job -> cron, for the watchdog (the registry's schedules)
    schedules: dict[str, str] = field(default_factory=dict)
    # job -> the IANA zone its cron is read in (absent: UTC), as the deployment reads it
    timezones: dict[str, str] = field(default_factory=dict)
    # the tended database's URL: pg_cron may live in another database of the same server
    dsn: str | None = field(default=None, repr=False)


@dataclass(kw_only=True)
class CheckResult:
    check_name: str
    target: str
    status: str
    observed: dict[str, Any] | None = None
    threshold: float | None = None
    expected: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # (metric_name, value, unit) for capacity_planning_metrics
    metrics: list[tuple[str, float, str]] = field(default_factory=list)
    # (metric_name, resource_name, value, unit) for measurements of other resources than the target
    resource_metrics: list[tuple[str, str, float, str]] = field(default_factory=list)


def health_sql(name: str) -> bytes:
    return load_sql(f"queries/health/{name}.sql")


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def over_limit(value: float, limit: float) -> str:
    return FAILED if value > limit else PASSED
