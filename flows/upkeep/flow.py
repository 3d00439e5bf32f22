"""The upkeep job as a Prefect flow: the survey, the ANALYZEs, each rebuild and the recording as
tasks inside the run lifecycle (lock, ledger, alerts, dry run, every target of the fleet)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import flow
from prefect.client.schemas.objects import State

from flows.core import clock, lifecycle, plain, runtime, settings
from flows.core.forms import DryRun, TargetName
from flows.core.logs import get_logger
from flows.core.outcomes import Done, Outcome, ProblemsFound
from flows.upkeep import results, summary
from flows.upkeep.rebuild import Rebuilt
from flows.upkeep.run import JOB, alert, analyze_all, rebuild_one, rebuild_plan
from flows.upkeep.scope import resolve
from flows.upkeep.statistics import Analyzed
from flows.upkeep.survey import Survey, survey


@runtime.db_task("upkeep-survey", JOB)
def survey_task() -> Survey:
    policy = settings.current_policy().upkeep
    with runtime.connection() as conn:
        return survey(conn, policy, now=clock.db_now(conn))


@runtime.db_task("upkeep-analyze", JOB, retries=1)
def analyze_task(s: Survey) -> list[Analyzed]:
    with runtime.connection() as conn:
        return analyze_all(conn, s, settings.current_policy().upkeep)


@runtime.db_task("upkeep-rebuild", JOB, retries=0, task_run_name="rebuild-{index}")
def rebuild_task(index: str, table: str, kind: str) -> Rebuilt:
    with runtime.connection() as conn:
        return rebuild_one(conn, index, table, kind, settings.current_policy().upkeep)


@runtime.db_task("upkeep-record", JOB)
def record_task(out: results.Outcome, operation_id: UUID) -> tuple[int, int]:
    with runtime.connection() as conn:
        return results.record(conn, out, flow_run_id=runtime.current_flow_run_id(), operation_id=operation_id)


@runtime.db_task("upkeep-alerts", JOB, retries=0)
def alerts_task(s: Survey, rebuilt: list[Rebuilt]) -> dict[str, int]:
    with runtime.connection() as conn:
        return alert(conn, s, rebuilt, flow_run_id=runtime.current_flow_run_id())


def _validate() -> None:
    """A table the policy names that does not exist fails here, before the lock or the ledger."""
    with runtime.connection() as conn:
        resolve(conn, settings.current_policy().upkeep)


def upkeep_run(run: lifecycle.Run, dry_run: bool) -> Outcome:
    """The job's work inside the lifecycle."""
    log = get_logger(job=JOB)
    dry_run = dry_run or run.policy.upkeep.dry_run
    s = survey_task()
    out = results.Outcome(survey=s, analyzed=[], rebuilt=[], dry_run=dry_run)
    if not dry_run:
        out.analyzed = analyze_task(s)
        plan = rebuild_plan(s)
        if any(kind != "bloated" for _, _, kind in plan):
            run.counts["pages_before"] = alerts_task(s, [])  # invalid indexes page when found
        out.rebuilt = [rebuild_task(index, table, kind) for index, table, kind in plan]
        run.counts["checks"], run.counts["metrics_written"] = record_task(out, run.operation_id)
        run.counts["alerts"] = alerts_task(s, out.rebuilt)
    run.counts.update(summary.counts(out))
    rows = summary.artifact_rows(out)
    plain.artifact(
        "table",
        table=rows or [{"kind": "-", "object": "-", "action": "nothing to do", "detail": ""}],
        key="upkeep-summary",
        description=f"upkeep: {summary.message(out)}; database time {s.db_ms:.0f} ms",
    )
    log.info("upkeep done", **{k: v for k, v in run.counts.items() if not isinstance(v, dict)})
    result = {"operation_id": str(run.operation_id), **summary.counts(out), "rows": rows}
    found = summary.findings(out)
    if found:
        return ProblemsFound(findings=found, summary=f"upkeep found {len(found)} problem(s)", result=result)
    return Done(result=result, message=summary.message(out))


@flow(name="upkeep", log_prints=False)
def upkeep_flow(dry_run: DryRun = False, target: TargetName | None = None) -> State[Any]:
    """ANALYZE partitioned tables, rebuild invalid and bloated indexes inside the window, report
    unused and duplicate indexes and the tables autovacuum is behind on.

    Args:
        dry_run: Report what would change; change nothing.
        target: The database (a [targets] name of the policy file). Empty: every target.
    """
    return lifecycle.run_flow(
        JOB,
        lambda run: upkeep_run(run, dry_run),
        params={"dry_run": dry_run},
        validate=_validate,
        target=target,
    )
