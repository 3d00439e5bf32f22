"""Health probes: plain functions over a connection, each returning check results.

Every probe reads only (catalog, statistics views, indexed ranges of the data tables) and takes
``now`` from the caller so that a probe's observed value is exact and testable. Thresholds come
from ``settings.HealthPolicy`` (the seed README's alerting thresholds are its defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.errors

from flows.core.policy.settings import HealthPolicy
from flows.health.checks import (
    CheckResult,
    Context,
)
from flows.health.server import default_partitions, partition_horizon, replication, sessions, xid_age
from flows.health.thresholds import (
    event_lag,
    model_accuracy,
    quality_score,
    query_response,
    resource_utilization,
)
from flows.health.watchdog import cron_jobs, job_watchdog

Conn = psycopg.Connection[tuple[Any, ...]]


Probe = Callable[[Conn, HealthPolicy, Context], list[CheckResult]]

PROBES: dict[str, Probe] = {
    "event_lag": event_lag,
    "model_accuracy": model_accuracy,
    "query_response": query_response,
    "quality_score": quality_score,
    "resource_utilization": resource_utilization,
    "sessions": sessions,
    "xid_age": xid_age,
    "replication": replication,
    "default_partitions": default_partitions,
    "partition_horizon": partition_horizon,
    "job_watchdog": job_watchdog,
    "cron_jobs": cron_jobs,
}
