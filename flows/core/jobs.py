"""The job registry: job name -> the flow that runs it (imported on demand)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flows.core.errors import ConfigError

# job name -> "module:flow function". Each job joins here as it lands.
JOBS: dict[str, str] = {
    "capacity": "flows.capacity:capacity_flow",
    "partitions": "flows.partitions:partitions_flow",
    "retention": "flows.retention:retention_flow",
    "views": "flows.views:views_flow",
    "health": "flows.health:health_flow",
    "quality": "flows.quality:quality_flow",
    "report": "flows.report:report_flow",
    "backfill": "flows.backfill:backfill_flow",
}

# job name -> "module:function" that checks a run's options before a flow run exists (CLI).
VALIDATORS: dict[str, str] = {
    "quality": "flows.quality.options:validate_options",
    "report": "flows.report:validate_options",
}


def job_names() -> list[str]:
    return sorted(JOBS)


def get_flow(job: str) -> Callable[..., Any]:
    target = JOBS.get(job)
    if target is None:
        raise ConfigError(f"unknown job {job!r}; known jobs: {', '.join(job_names())}")
    module_name, _, attr = target.partition(":")
    flow: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return flow


def validate_options(job: str, options: dict[str, Any]) -> None:
    """One line (ConfigError) for bad input before any flow run exists; jobs without a validator pass."""
    target = VALIDATORS.get(job)
    if target is not None:
        module_name, _, attr = target.partition(":")
        getattr(importlib.import_module(module_name), attr)(**options)
