"""The job registry: job name -> the flow that runs it (imported on demand)."""

from __future__ import annotations

import importlib
import typing
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
    _resolve_annotations(getattr(flow, "fn", flow))
    return flow


def _resolve_annotations(fn: Callable[..., Any]) -> None:
    """The flow function's annotations as objects, not strings (``from __future__ import
    annotations``). A served run is spawned with the flow pickled by value (the module attribute is
    the Flow, not its function), which keeps only the globals the code names: a parameter type used
    only in an annotation (``TargetName``) could then not be resolved, and Prefect failed the run
    with "not fully defined" before it started."""
    fn.__annotations__ = typing.get_type_hints(fn, include_extras=True)


def validate_options(job: str, options: dict[str, Any]) -> None:
    """One line (ConfigError) for bad input before any flow run exists; jobs without a validator pass."""
    target = VALIDATORS.get(job)
    if target is not None:
        module_name, _, attr = target.partition(":")
        getattr(importlib.import_module(module_name), attr)(**options)
