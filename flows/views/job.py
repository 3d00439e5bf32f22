"""The views job: its steps, its work, its plan and ``SPEC``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import Field

from flows.core.engine import (
    Cron,
    Done,
    JobSpec,
    Outcome,
    Overlap,
    Params,
    Phase,
    Plan,
    Planning,
    ProblemsFound,
    Replays,
    Run,
    step,
)
from flows.core.engine.forms import DryRun
from flows.core.logs import get_logger
from flows.views.catalog import MatView, plan
from flows.views.refresh import JOB, refresh_and_record, replay


class ViewsParams(Params):
    dry_run: DryRun = Field(False, description="Report what would change; change nothing.")


@step("views-plan")
def plan_step(run: Run) -> list[dict[str, Any]]:
    with run.connection() as conn:
        return [
            {**asdict(v), "concurrent": v.concurrent, "mode": v.mode, "warning": v.warning()}
            for v in plan(conn, run.policy.views)
        ]


@step("views-refresh", task_run_name="refresh-{name}")
def refresh_step(
    run: Run, name: str, populated: bool, unique_index: str | None, rollup_function: str | None = None
) -> dict[str, Any]:
    view = MatView(
        name=name,
        populated=populated,
        unique_index=unique_index,
        depends_on=(),
        rollup_function=rollup_function,
    )
    with run.connection() as conn:
        result = refresh_and_record(
            conn, view, policy=run.policy.views, flow_run_id=run.flow_run_id, operation_id=run.operation_id
        )
    if result.warning:
        get_logger(job=JOB, view=name).warning(result.warning)
    if result.error:
        get_logger(job=JOB, view=name).error("view refresh failed", error=result.error)
    out = asdict(result)
    out["finished_at"] = result.finished_at.isoformat()
    return out


def refresh_run(run: Run, dry_run: bool) -> Outcome:
    """The job's work: plan, then one step per view in dependency order."""
    log = get_logger(job=JOB)
    planned = plan_step(run)
    run.record(views=len(planned))
    if dry_run:
        for item in planned:
            log.info("would refresh", view=item["name"], mode=item["mode"])
        return Done(
            result={"dry_run": True, "plan": planned}, message=f"would refresh {len(planned)} view(s)"
        )
    results = []
    for item in planned:
        results.append(
            refresh_step(run, item["name"], item["populated"], item["unique_index"], item["rollup_function"])
        )
        run.record(refreshed=sum(1 for r in results if r["status"] != "failed"))
    failed = [r["view"] for r in results if r["status"] == "failed"]
    run.record(
        refreshed=len(results) - len(failed),
        failed=len(failed),
        plain=sum(1 for r in results if r["mode"] == "plain"),
        rollups=sum(1 for r in results if r["mode"] == "rollup"),
    )
    log.info("views refreshed", refreshed=len(results) - len(failed), failed=failed)
    result = {
        "refreshed": len(results) - len(failed),
        "failed": failed,
        "views": results,
        "warnings": [r["warning"] for r in results if r["warning"]],
    }
    if failed:
        errors = {r["view"]: r["error"] for r in results if r["status"] == "failed"}
        return ProblemsFound(
            findings=[f"{v}: {e}" for v, e in errors.items()],
            summary=f"{len(failed)} materialized view(s) failed to refresh",
            result=result,
        )
    return Done(result=result, message=f"{len(results)} view(s) refreshed")


def plan_run(planning: Planning, params: ViewsParams) -> Plan:
    """A bad include/exclude list is bad input here, before the lock or the ledger is touched."""
    plan(planning.conn, planning.policy.views)
    return Plan(work=lambda run: refresh_run(run, params.dry_run), params={"dry_run": params.dry_run})


SPEC = JobSpec(
    name=JOB,
    description="Refresh the managed materialized views in dependency order, never two runs at once.",
    params=ViewsParams,
    plan=plan_run,
    schedule=Cron("*/15 * * * *"),
    overlap=Overlap.CANCEL_NEW,
    tags=("maintenance",),
    replay=Replays(replay, phase=Phase.AFTER),
)
