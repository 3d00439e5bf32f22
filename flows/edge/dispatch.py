"""How ``pgtender run | backfill`` reach a job: through the running server, or here.

1. ``PREFECT_API_URL`` set: that API (unreachable: one line, exit 3, nothing ran).
2. Else the API ``pgtender up`` recorded under the state directory (``prefect/api.json``), when
   its process is alive and the API answers.
3. With an API that has the job's deployment: a run of the deployment is submitted (the UI shows
   it; it queues behind the deployment's concurrency limit and takes the job's locks like a
   scheduled run), followed until it ends, and its final state read back (``verdicts.from_state``).
   A run of the job already going (a scheduled one) is followed instead of starting a second: the
   command reports that run's outcome.
4. Otherwise (no server running, or an API that serves no pgtender deployment: a warning says so)
   the engine runs the job here with no orchestrator (``PlainOrchestrator``): the same lifecycle
   and ledger rows, no Prefect run.

Every path ends in a ``Verdict``: the command prints its one line and exits with its code.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from flows.core.engine import PlainOrchestrator, RunReport, Verdict, verdicts
from flows.core.engine import start as start_run
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.fleet import targets
from flows.core.logs import get_logger
from flows.core.masking import mask_secrets
from flows.core.policy import settings
from flows.edge.context import run_context
from flows.registry import REGISTRY

# --------------------------------------------------------------------------- where the API is


def api_file(state_dir: Path) -> Path:
    return state_dir / "prefect" / "api.json"


def record_api(state_dir: Path, api_url: str) -> Path:
    """``pgtender up``: where its API is, for the CLI commands run beside it."""
    path = api_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}), encoding="utf-8")
    return path


def forget_api(state_dir: Path) -> None:
    api_file(state_dir).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def find_api(state_dir: Path) -> tuple[str, str] | None:
    """(API URL, where it came from), or None when no server is running for this state directory."""
    env = os.environ.get("PREFECT_API_URL", "").strip()
    if env:
        if not env.startswith(("http://", "https://")):
            raise ConfigError("PREFECT_API_URL is not an http(s) URL")
        return env, "PREFECT_API_URL"
    path = api_file(state_dir)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        url, pid = str(recorded["api_url"]), int(recorded["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid) or not _answers(url):
        return None
    return url, str(path)


@contextmanager
def using_api(api_url: str) -> Iterator[None]:
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def check_api(api_url: str) -> None:
    """The API must answer before a run is started (one line, exit 3, nothing ran)."""
    try:
        httpx.get(f"{api_url.rstrip('/')}/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        where = mask_secrets(api_url)
        raise InfrastructureError(
            f"Prefect API at {where}: {type(exc).__name__}; nothing ran. Start the server (pgtender up)"
            " or unset PREFECT_API_URL"
        ) from None


# --------------------------------------------------------------------------- the paths


def run_here(job: str, values: dict[str, Any], orchestrator: Any = None) -> RunReport:
    """The engine in this process, with no orchestrator (or the one given)."""
    try:
        context = run_context(orchestrator or PlainOrchestrator())  # reads the policy file
    except PgtenderError as exc:
        return RunReport(job=job, results=[], error=exc)
    return start_run(REGISTRY.get(job), values, context)


def deployment_name(job: str) -> str:
    return f"{job}/{job}"


def _deployment(client: Any, job: str) -> Any | None:
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    try:
        return client.read_deployment_by_name(deployment_name(job))
    except ObjectNotFound:
        return None


def _active_run(client: Any, deployment_id: Any, parameters: dict[str, Any]) -> Any | None:
    """A run of the deployment that is going now with the same target (a scheduled one)."""
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415

    going = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
            ),
        ),
        limit=20,
    )
    target = parameters.get("target")
    for run in going:
        if (run.parameters or {}).get("target") == target:
            return run
    return None


def follow(client: Any, flow_run_id: Any, poll_seconds: float) -> Any:
    while True:
        state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_final():
            return state
        time.sleep(poll_seconds)


def through_deployment(job: str, parameters: dict[str, Any], *, poll_seconds: float = 0.5) -> Verdict:
    """A run of the job's deployment (or the one already going), followed to its end."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.deployments import run_deployment  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        deployment = _deployment(client, job)
        assert deployment is not None
        going = _active_run(client, deployment.id, parameters)
        if going is None:
            submitted: Any = run_deployment(  # the sync call returns the run itself
                deployment_name(job), parameters=parameters, timeout=0, as_subflow=False
            )
            state = follow(client, submitted.id, poll_seconds)
            if state.is_cancelled() and "concurrency" in (state.message or "").lower():
                going = _active_run(client, deployment.id, parameters)  # it lost the race for the slot
        if going is not None:
            state = follow(client, going.id, poll_seconds)
            verdict = verdicts.from_state(state)
            where = f"the {job} run already going: flow run {going.name} {going.id}"
            return Verdict(verdict.kind, f"{verdict.line} [{where}]".strip())
    verdict = verdicts.from_state(state)
    return Verdict(verdict.kind, f"{verdict.line} [flow run {submitted.name} {submitted.id}]".strip())


def dispatch(job: str, values: dict[str, Any]) -> tuple[Verdict, RunReport | None]:
    """Run ``job`` through the running server when there is one, else here. The report is there
    when the run happened in this process."""
    spec = REGISTRY.get(job)
    current = settings.load_settings()
    policy = settings.current_policy(current)
    spec.parse({k: v for k, v in values.items() if k != "target"})  # the form's types: one line, exit 2
    targets.check_name(values.get("target"), policy)
    found = find_api(current.state_dir)
    if found is not None:
        api_url, where = found
        check_api(api_url)
        with using_api(api_url):
            from prefect.client.orchestration import get_client  # noqa: PLC0415

            with get_client(sync_client=True) as client:
                has_deployment = _deployment(client, job) is not None
            if has_deployment:
                return through_deployment(job, values), None
        get_logger(job=job).warning(
            "no deployment of this job on the Prefect API: it runs here, without a flow run"
            " (pgtender serve registers the deployments)",
            api=mask_secrets(api_url),
            found_in=where,
        )
    report = run_here(job, values)
    return report.verdict, report


__all__ = ["dispatch", "find_api", "follow", "forget_api", "record_api", "run_here", "through_deployment"]
