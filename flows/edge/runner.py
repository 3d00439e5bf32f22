"""Run one job now, in this process: the flow with the options it accepts, its end state mapped to
pgtender's errors and exit codes."""

from __future__ import annotations

import importlib
from typing import Any

from flows.core.errors import ConfigError
from flows.core.jobs import JOBS, get_flow


def run_job(job: str, options: dict[str, Any]) -> Any:
    """Run ``job`` once with the options its flow accepts; map its end state to pgtender errors."""
    import inspect  # noqa: PLC0415

    from flows.core.errors import InfrastructureError, PgtenderError  # noqa: PLC0415

    flow = get_flow(job)
    accepted = inspect.signature(getattr(flow, "fn", flow)).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"job {job!r} does not take --{unknown[0].replace('_', '-')}")
    # A job module may check its input before a flow run exists (one line, nothing started).
    validate = getattr(importlib.import_module(JOBS[job].partition(":")[0]), "validate_options", None)
    if callable(validate):
        validate(**options)
    from flows.core.runtime import check_database  # noqa: PLC0415

    check_database()  # a wrong password or database: one line, exit 2, before any flow run exists
    state = flow(**options, return_state=True)
    if state.is_completed():
        return state.result()
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, PgtenderError):
        raise exc
    raise InfrastructureError(f"{job} ended {state.name}: {exc}")
