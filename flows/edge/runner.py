"""Run one job now, in this process: the flow with the options it accepts, its end state mapped to
pgtender's errors and exit codes (0 done or skipped, 1 problems found, 2 bad input, 3 infrastructure).

Prefect's bookkeeping is not the job: when the API cannot be reached before the run starts, that
is one line and exit 3; when it fails after the job's work ended (a lost result, a server that
answered "database is locked"), the outcome the lifecycle recorded in this process decides.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import httpx

from flows.core import lifecycle, targets
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.errors import ProblemsFound as ProblemsError
from flows.core.jobs import get_flow, validate_options
from flows.core.logs import get_logger
from flows.core.masking import mask_secrets
from flows.core.outcomes import ProblemsFound, Skipped
from flows.core.runtime import check_database


def _prefect_failure(exc: BaseException) -> str:
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    where = PREFECT_API_URL.value() or "the temporary local Prefect server"
    return mask_secrets(f"Prefect API at {where}: {type(exc).__name__}: {' '.join(str(exc).split())}")


def check_prefect_api() -> None:
    """With ``PREFECT_API_URL`` set, the API must answer before a run is started (one line, exit 3)."""
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    url = PREFECT_API_URL.value()
    if not url:
        return
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        raise InfrastructureError(
            f"{_prefect_failure(exc)}; nothing ran. Start the server (pgtender up) or unset PREFECT_API_URL"
        ) from None


def validate_run(job: str, options: dict[str, Any]) -> None:
    """Before anything runs: options the job takes, valid values, a database that answers."""
    flow = get_flow(job)
    accepted = inspect.signature(getattr(flow, "fn", flow)).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"job {job!r} does not take --{unknown[0].replace('_', '-')}")
    target = options.get("target")
    chosen = targets.select(target)  # unknown target, missing URL, duplicates: exit 2, nothing started
    with targets.using(chosen[0]) if len(chosen) == 1 else contextlib.nullcontext():
        validate_options(job, {k: v for k, v in options.items() if k != "target"})  # one line
        if len(chosen) == 1:
            # a wrong password or database: one line, exit 2, before any flow run exists (a sweep
            # over several targets checks each inside the run: one target down stops no other)
            check_database()
            if chosen[0].explicit:  # a replica named for a job that writes: exit 2, no flow run
                lifecycle.replica_first(job)


def run_job(job: str, options: dict[str, Any]) -> Any:
    """Run ``job`` once with the options its flow accepts; map its end state to pgtender errors."""
    from prefect.exceptions import PrefectException  # noqa: PLC0415

    flow = get_flow(job)
    validate_run(job, options)
    check_prefect_api()
    before = lifecycle.last_outcome(job)
    try:
        state = flow(**options, return_state=True)
    except (httpx.HTTPError, PrefectException, OSError) as exc:
        outcome = lifecycle.last_outcome(job)
        if outcome is None or outcome is before:
            raise InfrastructureError(
                f"{_prefect_failure(exc)}; the job did not run. Start the server (pgtender up) or unset"
                " PREFECT_API_URL"
            ) from None
        get_logger(job=job).warning(
            "the job finished; Prefect's bookkeeping failed", error=_prefect_failure(exc)
        )
        return _outcome_result(outcome)
    if state.is_completed():
        return state.result(raise_on_failure=False)
    error = state.result(raise_on_failure=False)
    if isinstance(error, PgtenderError):
        raise error
    raise InfrastructureError(f"{job} ended {state.name}: {mask_secrets(str(state.message or error))}")


def _outcome_result(outcome: lifecycle.Outcome) -> Any:
    if isinstance(outcome, ProblemsFound):
        raise ProblemsError(outcome.message)
    if isinstance(outcome, Skipped):
        return {**outcome.result, "skipped": outcome.reason}
    return outcome.result
