"""The job registry: job name -> the flow that runs it (imported on demand)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flows.errors import ConfigError

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


def job_names() -> list[str]:
    return sorted(JOBS)


def get_flow(job: str) -> Callable[..., Any]:
    target = JOBS.get(job)
    if target is None:
        raise ConfigError(f"unknown job {job!r}; known jobs: {', '.join(job_names())}")
    module_name, _, attr = target.partition(":")
    flow: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return flow


def run_job(job: str, options: dict[str, Any]) -> Any:
    """Run ``job`` once with the options its flow accepts; map its end state to pgtender errors."""
    import inspect  # noqa: PLC0415

    from flows.errors import InfrastructureError, PgtenderError  # noqa: PLC0415

    flow = get_flow(job)
    accepted = inspect.signature(getattr(flow, "fn", flow)).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"job {job!r} does not take --{unknown[0].replace('_', '-')}")
    # A job module may check its input before a flow run exists (one line, nothing started).
    validate = getattr(importlib.import_module(JOBS[job].partition(":")[0]), "validate_options", None)
    if callable(validate):
        validate(**options)
    from flows.runtime import check_database  # noqa: PLC0415

    check_database()  # a wrong password or database: one line, exit 2, before any flow run exists
    state = flow(**options, return_state=True)
    if state.is_completed():
        return state.result()
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, PgtenderError):
        raise exc
    raise InfrastructureError(f"{job} ended {state.name}: {exc}")
