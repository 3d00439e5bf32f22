"""How ``pgtender run | backfill | report`` reach a job: through the running server, or plainly here.

1. ``PREFECT_API_URL`` set: that API (unreachable: one line, exit 3, nothing ran).
2. Else the API ``pgtender up`` recorded under the state directory (``prefect/api.json``), when
   its process is alive and the API answers.
3. With an API that has the job's deployment: a run of the deployment is submitted
   (``run_deployment``; the UI shows it, it queues behind the deployment's concurrency limit and
   takes the job's locks like a scheduled run), its logs are streamed here, and the command exits
   with its outcome (0 done or skipped, 1 problems found, 2 bad input, 3 infrastructure).
4. With no server running: one line saying so, then the job's core runs here in plain mode
   (``flows.core.plain``): the same lifecycle and ledger rows, no Prefect run, no temporary server
   (that started in 20-60 s, and its history vanished with it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from flows.core import plain, settings
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.errors import ProblemsFound as ProblemsError
from flows.core.jobs import get_flow
from flows.core.masking import mask_secrets
from flows.core.outcomes import BAD_INPUT_STATE, INFRASTRUCTURE_STATE, PROBLEMS_STATE, SKIPPED_STATE

Echo = Callable[[str], None]


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


# --------------------------------------------------------------------------- outcomes


def raise_for(job: str, name: str | None, message: str | None) -> None:
    """A final state's name as pgtender's exit code (via its errors); Completed/Skipped: return."""
    text = mask_secrets(" ".join((message or "").split()))
    if name in ("Completed", SKIPPED_STATE):
        return
    if name == PROBLEMS_STATE:
        raise ProblemsError(text or f"{job} found problems")
    if name == BAD_INPUT_STATE:
        raise ConfigError(text or f"{job}: bad input")
    if name == INFRASTRUCTURE_STATE and text:  # the lifecycle's one line says what and where
        raise InfrastructureError(text)
    raise InfrastructureError(f"{job} ended {name or 'unknown'}" + (f": {text}" if text else ""))


# --------------------------------------------------------------------------- plain


def run_plain(job: str, options: dict[str, Any], echo: Echo, *, reason: str) -> Any:
    """The job's flow body without Prefect; its result (raises its error)."""
    echo(f"pgtender: {reason}: running {job} here without Prefect (ledger only, no flow run)")
    flow = get_flow(job)
    with plain.plain_mode():
        state = getattr(flow, "fn", flow)(**options)
    data = getattr(state, "data", None)
    if isinstance(data, PgtenderError) and not state.is_completed():
        raise data  # the lifecycle's own error, as a flow run here would raise it
    raise_for(job, state.name, state.message)
    return data


# --------------------------------------------------------------------------- through the server


@contextmanager
def _api(api_url: str) -> Iterator[None]:
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def deployment_name(job: str) -> str:
    flow: Any = get_flow(job)
    return f"{flow.name}/{job}"


def has_deployment(job: str) -> bool:
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(deployment_name(job))
        except ObjectNotFound:
            return False
    return True


def _print_log(echo: Echo, log: Any) -> None:
    when = log.timestamp.strftime("%H:%M:%S") if log.timestamp else ""
    level = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}.get(log.level, "info")
    echo(f"{when} [{level:<7}] {log.message}")


def submit_and_follow(
    job: str, parameters: dict[str, Any], echo: Echo, *, poll_seconds: float = 0.3, drain_seconds: float = 1.0
) -> Any:
    """Submit a run of the job's deployment, stream its logs, return when it ends (raises its error)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId  # noqa: PLC0415
    from prefect.client.schemas.objects import FlowRun  # noqa: PLC0415
    from prefect.client.schemas.sorting import LogSort  # noqa: PLC0415
    from prefect.deployments import run_deployment  # noqa: PLC0415

    name = deployment_name(job)
    # the sync call returns the run itself
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]
        name, parameters=parameters, timeout=0, as_subflow=False
    )
    echo(f"submitted {name}: flow run {flow_run.name} ({flow_run.id})")
    seen = 0
    ended_at: float | None = None
    with get_client(sync_client=True) as client:
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
        while True:
            logs = client.read_logs(log_filter=log_filter, sort=LogSort.TIMESTAMP_ASC, offset=seen, limit=200)
            for log in logs:
                _print_log(echo, log)
            seen += len(logs)
            state = client.read_flow_run(flow_run.id).state
            if state is not None and state.is_final():
                ended_at = ended_at or time.monotonic()
                if not logs and time.monotonic() - ended_at >= drain_seconds:
                    break  # the run's last log lines arrive shortly after its state
            time.sleep(poll_seconds)
    echo(f"{job}: {state.name}" + (f": {state.message}" if state.message else ""))
    raise_for(job, state.name, state.message)
    return None


def dispatch(job: str, options: dict[str, Any], echo: Echo, *, err: Echo) -> Any:
    """Run ``job`` through the running server when there is one, else plainly here."""
    from flows.edge.runner import check_prefect_api, run_job, validate_run  # noqa: PLC0415

    validate_run(job, options)  # bad input: one line, exit 2, nothing submitted or run
    current = settings.load_settings()
    found = find_api(current.state_dir)
    if found is None:
        return run_plain(job, options, err, reason=f"no pgtender server is running for {current.state_dir}")
    api_url, where = found
    with _api(api_url):
        check_prefect_api()  # PREFECT_API_URL set but unreachable: one line, exit 3, nothing ran
        if has_deployment(job):
            return submit_and_follow(job, options, echo)
        # an API without pgtender's deployments (nothing serves them): a flow run from here
        where = f"{mask_secrets(api_url)} ({where})"
        err(f"pgtender: no deployment {deployment_name(job)} on {where}: a flow run from here instead")
        return run_job(job, options)
