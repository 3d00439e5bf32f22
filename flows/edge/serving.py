"""Every job as a Prefect deployment: schedule, tags, retries, concurrency, a typed parameter form.

Two ways to run them (DESIGN.md): ``pgtender serve`` / ``pgtender up`` serve every deployment from
one process (``prefect.serve``), and ``deployments/prefect.yaml`` registers the same deployments
on a work pool for workers on many machines. Both take the schedules, tags and parameter models
from here.

Late-run storms: a deployment's scheduler creates runs ahead of time. When nothing executes them
(the serving process or the workers were down, the machine slept), they pile up as Late, and a
runner that comes back would start every one of them: 288 health runs after a day of downtime,
96 views refreshes. Only the newest is useful: each job works on "now" (or on "yesterday"), so
the older runs would repeat the same work. ``collapse_late_runs`` keeps, per deployment, at most
one overdue run (the newest) and cancels the others with a message saying why; ``serve_all`` does
it after registering the deployments and before the runner polls, then every minute while it
serves (a suspended laptop wakes up with the same pile). Prefect's own upsert of a deployment
deletes only *future* auto-scheduled runs, and it has no "skip late runs" setting, hence this.
Runs are grouped by their parameters: a run someone triggered by hand with its own parameters (a
backfill or a quality day from the UI form) always keeps its place.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flows.core import clock
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.edge import automations
from flows.edge.flows import flow_for
from flows.registry import REGISTRY

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.deployments.runner import RunnerDeployment

    from flows.core.policy.settings import Policy

# An auto-scheduled run is "overdue" (a late-run candidate) once this much past its start time.
LATE_GRACE = timedelta(minutes=2)
PAGE = 200  # the API's maximum page size


# --------------------------------------------------------------------------- deployments
# The run form of each deployment is Prefect's own, from the flow's signature (types, constraints:
# flows/core/forms.py) and docstring (descriptions): `serve`, `up` and `prefect deploy` therefore
# show the same form, and the server refuses a submission that breaks its schema.


def tags(job: str) -> list[str]:
    spec = REGISTRY.get(job)
    return ["pgtender", job, *(t for t in spec.tags if t != job)]


def deployment_options(job: str, policy: Policy | None = None) -> dict[str, Any]:
    """What a deployment of ``job`` is, beside its flow: schedule, tags, concurrency, description —
    all from the job's ``JobSpec`` (one run at a time; a new run queues, or is cancelled while one
    runs for the jobs whose spec says so — the advisory lock is the second line of defence)."""
    from prefect.client.schemas.objects import (  # noqa: PLC0415
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )
    from prefect.schedules import Cron  # noqa: PLC0415
    from prefect.types.entrypoint import EntrypointType  # noqa: PLC0415

    spec = REGISTRY.get(job)
    policy = policy or settings.current_policy()
    strategy = ConcurrencyLimitStrategy(spec.overlap.value)
    schedule = spec.schedule.in_policy(policy) if spec.schedule is not None else None
    return {
        "name": job,
        "schedules": [Cron(schedule.cron, timezone=schedule.timezone)] if schedule else None,
        "tags": tags(job),
        "description": spec.description,
        "concurrency_limit": ConcurrencyLimitConfig(limit=1, collision_strategy=strategy),
        # the installed package, not a file path on the machine that registered the deployment
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def deployment_for(job: str, policy: Policy | None = None) -> RunnerDeployment:
    deployment: RunnerDeployment = served_flow(job).to_deployment(**deployment_options(job, policy))
    return deployment


def deployments(policy: Policy | None = None) -> list[RunnerDeployment]:
    """One deployment per registered job (on-demand jobs have no schedule)."""
    return [deployment_for(job, policy) for job in REGISTRY.names()]


# --------------------------------------------------------------------------- late-run rule


def collapse_late_runs(
    client: SyncPrefectClient,
    deployment_ids: Mapping[str, UUID],
    *,
    now: datetime | None = None,
    grace: timedelta = LATE_GRACE,
) -> dict[str, int]:
    """Keep at most one overdue auto-scheduled run per deployment (the newest); cancel the rest.

    Returns job -> runs cancelled. Why: see the module docstring.
    """
    now = now or clock.now()  # compared with Prefect's expected start times: the real clock in production
    cancelled: dict[str, int] = {}
    for job, deployment_id in deployment_ids.items():
        stale = _cancel_stale_runs(client, job, _overdue_runs(client, deployment_id, before=now - grace))
        if stale:
            cancelled[job] = stale
    return cancelled


def _overdue_runs(client: SyncPrefectClient, deployment_id: UUID, *, before: datetime) -> list[Any]:
    """The deployment's runs still Scheduled although due before ``before``, newest first."""
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415
    from prefect.client.schemas.sorting import FlowRunSort  # noqa: PLC0415

    runs: list[Any] = []
    while True:  # the API pages at 200; a day of downtime is 288 health runs
        page = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=before),  # type: ignore[arg-type]
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=PAGE,
            offset=len(runs),
        )
        runs += page
        if len(page) < PAGE:
            return runs


def _cancel_stale_runs(client: SyncPrefectClient, job: str, runs: list[Any]) -> int:
    """Of the overdue runs with the same parameters, keep the newest and cancel the others.

    Runs with the same parameters do the same work: one of them is enough. A run someone started
    by hand with its own parameters (a backfill from the UI form) keeps its place. Returns the
    runs cancelled.
    """
    from prefect.states import Cancelled  # noqa: PLC0415

    log = get_logger(component="late-runs")
    groups: dict[str, list[Any]] = {}
    for run in runs:  # newest first
        if run.run_count == 0:
            groups.setdefault(json.dumps(run.parameters, sort_keys=True, default=str), []).append(run)
    cancelled = 0
    for overdue in groups.values():
        if len(overdue) <= 1:
            continue
        keep, stale = overdue[0], overdue[1:]
        message = (
            f"pgtender late-run rule: {len(overdue)} overdue runs of {job}; only the newest "
            f"({keep.expected_start_time:%Y-%m-%d %H:%M} UTC) runs as the catch-up run"
        )
        for run in stale:
            client.set_flow_run_state(run.id, Cancelled(message=message), force=True)
        cancelled += len(stale)
        log.warning(
            "late runs collapsed: at most one catch-up run per job after downtime; each run works "
            "on the current state (or yesterday), so older overdue runs would repeat the newest's work",
            job=job,
            cancelled=len(stale),
            kept=str(keep.id),
            kept_expected_start=str(keep.expected_start_time),
            oldest_expected_start=str(stale[-1].expected_start_time),
            parameters=keep.parameters,
        )
    return cancelled


def collapse_late_runs_now(deployment_ids: Mapping[str, UUID]) -> dict[str, int]:
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        return collapse_late_runs(client, deployment_ids)


def deployment_ids(names: list[str] | None = None) -> dict[str, UUID]:
    """job -> id of the registered deployments ``<flow>/<job>`` (those that exist)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    out: dict[str, UUID] = {}
    with get_client(sync_client=True) as client:
        for job in names or REGISTRY.names():
            try:
                out[job] = client.read_deployment_by_name(f"{job}/{job}").id
            except ObjectNotFound:
                continue
    return out


def guard_late_runs(ids: Mapping[str, UUID], stop: threading.Event, *, every_seconds: float = 60.0) -> None:
    """Apply the late-run rule every ``every_seconds`` until ``stop`` is set."""
    from prefect.exceptions import PrefectException  # noqa: PLC0415

    log = get_logger(component="late-runs")
    while not stop.wait(every_seconds):
        try:
            collapse_late_runs_now(ids)
        except (PrefectException, OSError) as exc:  # the API restarting: try again next time
            log.warning("late-run guard could not reach the API", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - httpx errors et al.; the guard must keep going
            log.warning("late-run guard failed", error=f"{type(exc).__name__}: {exc}")


def served_flow(job: str) -> Any:
    """The flow object a deployment runs. No flow-level retries: transient database errors are
    retried by the steps, and nothing else is worth a retry (docs/development.md)."""
    return flow_for(REGISTRY.get(job))


def serve_all(*, limit: int | None = None) -> None:
    """Register every deployment, apply the late-run rule, then serve them in this process."""
    import asyncio  # noqa: PLC0415

    from flows.edge.serve_runner import ServeRunner  # noqa: PLC0415

    log = get_logger(component="serve")

    # Schedules stay active while pgtender is down (no pause on shutdown): the UI shows the runs
    # that were missed as Late, and the late-run rule below turns them into one catch-up run.
    # query_seconds: a run submitted by `pgtender run` starts within 2 s (Prefect's default polls every 10 s)
    # heartbeat_seconds: every served run heartbeats, so a run whose process dies is Crashed by the
    # automation applied below (flows/edge/automations.py) and its concurrency slot released
    runner = ServeRunner(
        name="pgtender",
        limit=limit,
        pause_on_shutdown=False,
        query_seconds=2.0,
        heartbeat_seconds=automations.HEARTBEAT_SECONDS,
    )
    ids: dict[str, UUID] = {}
    for job in REGISTRY.names():
        # add_flow upserts the deployment (Prefect then deletes its *future* auto-scheduled runs and
        # keeps the overdue ones) and runs this flow object when a run of it comes due.
        ids[job] = runner.add_flow(served_flow(job), **deployment_options(job))  # type: ignore[assignment]
    cancelled = collapse_late_runs_now(ids)
    applied = automations.apply_now()
    log.info(
        "deployments registered",
        deployments=sorted(ids),
        late_runs_cancelled=cancelled,
        automations={a.name: a.action for a in applied},
    )
    stop = threading.Event()
    # The thread runs in a copy of this context: Prefect's settings (the API URL `pgtender up` set
    # with temporary_settings) live in context variables, which a plain new thread would not see.
    context = contextvars.copy_context()
    guard = threading.Thread(
        target=context.run, args=(guard_late_runs, ids, stop), name="late-runs", daemon=True
    )
    guard.start()
    try:
        asyncio.run(runner.serve())
    finally:
        stop.set()
