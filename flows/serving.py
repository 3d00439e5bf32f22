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
import inspect
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from flows.core import clock
from flows.jobs import JOBS, get_flow
from flows.logs import get_logger

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.deployments.runner import RunnerDeployment

    from flows.settings import Policy

# job -> cron (DESIGN.md's table). Maintenance schedules are UTC; the report's zone is
# ``report.timezone`` of the policy (REPORT_TZ_JOBS). The health watchdog reads this table.
SCHEDULES: dict[str, str] = {
    "capacity": "0 2 * * *",
    "partitions": "5 0 * * *",
    "retention": "0 3 * * 0",
    "views": "*/15 * * * *",
    "health": "*/5 * * * *",
    "quality": "0 1 * * *",
    "report": "0 8 * * 1",
}

# Jobs whose schedule is read in the report's configurable IANA time zone instead of UTC.
REPORT_TZ_JOBS: frozenset[str] = frozenset({"report"})

# Jobs whose deployment runs one at a time and cancels (not queues) a new run while one is running
# (the job's advisory lock is the second line of defence, for runs started outside the deployment).
# Every other deployment also runs one at a time, but queues the next run (ENQUEUE).
CANCEL_NEW: frozenset[str] = frozenset({"views", "health"})

# Flow-level retries (attempts after the first, delay in seconds). The tasks already retry
# transient database errors; a flow retry is for what is left. None for jobs whose failure is a
# finding (a failed check: re-running finds it again) or whose next run comes within minutes.
RETRIES: dict[str, tuple[int, float]] = {
    "partitions": (2, 300.0),
    "retention": (1, 600.0),
    "capacity": (1, 300.0),
    "report": (1, 900.0),  # the send task already retried; try once more a quarter later
}

TAGS: dict[str, tuple[str, ...]] = {
    "partitions": ("maintenance",),
    "retention": ("maintenance",),
    "views": ("maintenance",),
    "capacity": ("maintenance", "monitoring"),
    "health": ("monitoring",),
    "quality": ("quality",),
    "report": ("quality", "report"),
    "backfill": ("on-call",),
}

# An auto-scheduled run is "overdue" (a late-run candidate) once this much past its start time.
LATE_GRACE = timedelta(minutes=2)
PAGE = 200  # the API's maximum page size


# --------------------------------------------------------------------------- parameter forms
# One model per job: the Prefect UI builds its run form (types, defaults, descriptions) from the
# deployment's parameter schema, which is taken from these models. Field names are the flow's
# parameters (tests/test_serving.py keeps them in step with the flow signatures).


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoParameters(_Params):
    """The job takes no parameters."""


class DryRunParameters(_Params):
    dry_run: bool = Field(False, title="Dry run", description="Report what would change; change nothing.")


class QualityParameters(_Params):
    day: str | None = Field(
        None,
        title="Day",
        description="The UTC day to validate, YYYY-MM-DD. Empty: yesterday.",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        examples=["2026-11-16"],
    )
    suite: str | None = Field(
        None,
        title="Suite",
        description="Run only this GX suite (e.g. learning_events). Empty: every enabled suite.",
        examples=["learning_events"],
    )


class ReportParameters(_Params):
    week: str | None = Field(
        None,
        title="ISO week",
        description="The week to report, as an ISO week YYYY-Www. Empty: the last complete week "
        "in the report's time zone.",
        pattern=r"^\d{4}-W\d{2}$",
        examples=["2026-W47"],
    )
    to: str | None = Field(
        None,
        title="Recipients",
        description="Comma-separated addresses instead of the policy's report.recipients.",
        examples=["oncall@example.com"],
    )
    dry_run: bool = Field(
        False,
        title="Dry run",
        description="Write the .eml and .html under the state directory; send nothing.",
    )


class BackfillParameters(_Params):
    start: str = Field(
        title="First day",
        description="First UTC day to re-run, YYYY-MM-DD.",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        examples=["2026-11-01"],
    )
    end: str = Field(
        title="Last day",
        description="Last UTC day to re-run, YYYY-MM-DD (inclusive; not in the future).",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        examples=["2026-11-07"],
    )
    jobs: list[Literal["partitions", "views", "quality", "capacity"]] | None = Field(
        None,
        title="Jobs",
        description="Jobs to re-run for each day. Empty: quality and capacity.",
    )
    force: bool = Field(
        False,
        title="Force",
        description="Re-run days this backfill already did, and allow more than backfill.max_days days.",
    )


PARAMETERS: dict[str, type[_Params]] = {
    "backfill": BackfillParameters,
    "capacity": NoParameters,
    "health": NoParameters,
    "partitions": DryRunParameters,
    "retention": DryRunParameters,
    "views": DryRunParameters,
    "quality": QualityParameters,
    "report": ReportParameters,
}


def parameter_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI parameter schema Prefect stores on a deployment, from a pydantic model."""
    schema = model.model_json_schema()
    properties: dict[str, Any] = schema.get("properties", {})
    for position, prop in enumerate(properties.values()):
        prop["position"] = position  # the UI orders the form by it
    return {
        "title": "Parameters",
        "type": "object",
        "properties": properties,
        "required": list(schema.get("required", [])),
        "definitions": dict(schema.get("$defs", {})),
    }


def flow_parameters(job: str) -> list[str]:
    flow = get_flow(job)
    return list(inspect.signature(getattr(flow, "fn", flow)).parameters)


# --------------------------------------------------------------------------- deployments


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str


def schedule_for(job: str, policy: Policy | None = None) -> Schedule | None:
    """The job's default schedule, or None for on-demand jobs (backfill)."""
    cron = SCHEDULES.get(job)
    if cron is None:
        return None
    if job in REPORT_TZ_JOBS:
        from flows import settings  # noqa: PLC0415 - read at call time, never at import

        policy = policy or settings.current_policy()
        return Schedule(cron, policy.report.timezone)
    return Schedule(cron, "UTC")


def _description(flow: Any) -> str:
    doc = inspect.getdoc(getattr(flow, "fn", flow)) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def schedules_for(policy: Policy | None = None) -> dict[str, tuple[str, str]]:
    """job -> (cron, time zone) of every scheduled job, as its deployment reads it."""
    out: dict[str, tuple[str, str]] = {}
    for job in SCHEDULES:
        sched = schedule_for(job, policy)
        if sched is not None:
            out[job] = (sched.cron, sched.timezone)
    return out


def deployment_for(job: str, policy: Policy | None = None) -> RunnerDeployment:
    from prefect.client.schemas.objects import (  # noqa: PLC0415
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )
    from prefect.schedules import Cron  # noqa: PLC0415
    from prefect.utilities.callables import ParameterSchema  # noqa: PLC0415

    flow = served_flow(job)
    strategy = ConcurrencyLimitStrategy.CANCEL_NEW if job in CANCEL_NEW else ConcurrencyLimitStrategy.ENQUEUE
    schedule = schedule_for(job, policy)
    deployment: RunnerDeployment = flow.to_deployment(
        name=job,
        schedules=[Cron(schedule.cron, timezone=schedule.timezone)] if schedule else None,
        tags=["pgtender", job, *TAGS.get(job, ())],
        description=_description(flow),
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=strategy),
    )
    model = PARAMETERS.get(job)
    if model is not None:
        if set(model.model_fields) == set(flow_parameters(job)):
            deployment._parameter_openapi_schema = ParameterSchema(**parameter_schema(model))
        else:  # the flow changed and its form did not: Prefect's own form from the signature
            get_logger(job=job).warning(
                "parameter model out of step with the flow signature; using the signature",
                model=sorted(model.model_fields),
                flow=flow_parameters(job),
            )
    return deployment


def deployments(policy: Policy | None = None) -> list[RunnerDeployment]:
    """One deployment per registered job (on-demand jobs have no schedule)."""
    return [deployment_for(job, policy) for job in sorted(JOBS)]


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
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415
    from prefect.client.schemas.sorting import FlowRunSort  # noqa: PLC0415
    from prefect.states import Cancelled  # noqa: PLC0415

    log = get_logger(component="late-runs")
    now = now or clock.now()  # compared with Prefect's expected start times: the real clock in production
    cancelled: dict[str, int] = {}
    for job, deployment_id in deployment_ids.items():
        runs: list[Any] = []
        while True:  # the API pages at 200; a day of downtime is 288 health runs
            page = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                    expected_start_time=FlowRunFilterExpectedStartTime(before_=now - grace),  # type: ignore[arg-type]
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=PAGE,
                offset=len(runs),
            )
            runs += page
            if len(page) < PAGE:
                break
        # Runs with the same parameters do the same work: one of them is enough. A run someone
        # started by hand with its own parameters (a backfill from the UI form) keeps its place.
        groups: dict[str, list[Any]] = {}
        for run in runs:  # newest first
            if run.run_count == 0:
                groups.setdefault(json.dumps(run.parameters, sort_keys=True, default=str), []).append(run)
        stale_all: list[Any] = []
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
            stale_all += stale
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
        if stale_all:
            cancelled[job] = len(stale_all)
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
        for job in names or sorted(JOBS):
            flow = get_flow(job)
            try:
                out[job] = client.read_deployment_by_name(f"{flow.name}/{job}").id  # type: ignore[attr-defined]
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
    """The flow object a deployment runs: the job's flow with its flow-level retries."""
    flow = get_flow(job)
    retries, delay = RETRIES.get(job, (0, 0.0))
    return flow.with_options(retries=retries, retry_delay_seconds=delay) if retries else flow  # type: ignore[attr-defined]


def serve_all(*, limit: int | None = None) -> None:
    """Register every deployment, apply the late-run rule, then serve them in this process."""
    import asyncio  # noqa: PLC0415

    from prefect.runner import Runner  # noqa: PLC0415

    log = get_logger(component="serve")
    deps = deployments()
    # Schedules stay active while pgtender is down (no pause on shutdown): the UI shows the runs
    # that were missed as Late, and the late-run rule below turns them into one catch-up run.
    runner = Runner(name="pgtender", limit=limit, pause_on_shutdown=False)
    ids: dict[str, UUID] = {}
    for dep in deps:
        # add_deployment upserts it (Prefect then deletes its *future* auto-scheduled runs and keeps
        # the overdue ones). The flow object is registered with it, as Runner.add_flow does, so the
        # runner starts this object (with its retries) rather than re-importing the entrypoint.
        ids[dep.name] = runner.add_deployment(dep)  # type: ignore[assignment]
        runner._deployment_registry.register_flow(ids[dep.name], served_flow(dep.name))
    cancelled = collapse_late_runs_now(ids)
    log.info("deployments registered", deployments=sorted(ids), late_runs_cancelled=cancelled)
    stop = threading.Event()
    # The thread runs in a copy of this context: Prefect's settings (the API URL `pgtender up` set
    # with temporary_settings) live in context variables, which a plain new thread would not see.
    context = contextvars.copy_context()
    guard = threading.Thread(
        target=context.run, args=(guard_late_runs, ids, stop), name="late-runs", daemon=True
    )
    guard.start()
    try:
        asyncio.run(runner.start())
    finally:
        stop.set()
