"""The upkeep job: the survey, the ANALYZEs, each rebuild and the recording as steps of the engine's
run (lock, ledger, alerts, dry run, every target of the fleet), declared once in ``SPEC``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flows.core import clock
from flows.core.engine import Cron, Done, JobSpec, Outcome, Params, Plan, Planning, ProblemsFound, Run, step
from flows.core.engine.forms import DryRun
from flows.core.logs import get_logger
from flows.core.policy.settings import Policy
from flows.upkeep import results, summary
from flows.upkeep.rebuild import Rebuilt
from flows.upkeep.run import JOB, alert, analyze_all, page_found, rebuild_one, rebuild_plan
from flows.upkeep.scope import resolve
from flows.upkeep.statistics import Analyzed
from flows.upkeep.survey import Survey, survey


@step("upkeep-survey")
def survey_step(run: Run) -> Survey:
    with run.connection() as conn:
        return survey(conn, run.policy.upkeep, now=clock.db_now(conn))


@step("upkeep-analyze", retries=1)
def analyze_step(run: Run, s: Survey) -> list[Analyzed]:
    with run.connection() as conn:
        return analyze_all(conn, s, run.policy.upkeep)


@step("upkeep-rebuild", retries=0, task_run_name="rebuild-{index}")
def rebuild_step(run: Run, index: str, table: str, kind: str) -> Rebuilt:
    with run.connection() as conn:
        return rebuild_one(conn, index, table, kind, run.policy.upkeep)


@step("upkeep-record")
def record_step(run: Run, out: results.Outcome) -> tuple[int, int]:
    with run.connection() as conn:
        return results.record(conn, out, flow_run_id=run.flow_run_id, operation_id=run.operation_id)


@step("upkeep-page-found", retries=0)
def page_found_step(run: Run, s: Survey) -> dict[str, int]:
    with run.connection() as conn:
        return page_found(conn, s, target=run.target.name, policy=run.policy, flow_run_id=run.flow_run_id)


@step("upkeep-alerts", retries=0)
def alerts_step(run: Run, s: Survey, rebuilt: list[Rebuilt]) -> dict[str, int]:
    with run.connection() as conn:
        return alert(conn, s, rebuilt, target=run.target.name)


def upkeep_run(run: Run, dry_run: bool) -> Outcome:
    """The job's work: survey, ANALYZE, rebuilds (one at a time), record, alerts, the artifact."""
    log = get_logger(job=JOB)
    dry_run = dry_run or run.policy.upkeep.dry_run
    s = survey_step(run)
    out = results.Outcome(survey=s, analyzed=[], rebuilt=[], dry_run=dry_run)
    if not dry_run:
        out.analyzed = analyze_step(run, s)
        run.record(parents_analyzed=len(out.analyzed))
        plan = rebuild_plan(s)
        if any(kind != "bloated" for _, _, kind in plan):
            run.record(pages_before=page_found_step(run, s))  # invalid indexes page when found
        for index, table, kind in plan:
            out.rebuilt.append(rebuild_step(run, index, table, kind))
            run.record(indexes_rebuilt=sum(1 for r in out.rebuilt if r.status == "rebuilt"))
        checks, written = record_step(run, out)
        run.record(checks=checks, metrics_written=written, alerts=alerts_step(run, s, out.rebuilt))
    counts = summary.counts(out)
    run.record(**counts)
    rows = summary.artifact_rows(out)
    run.artifact(
        "table",
        table=rows or [{"kind": "-", "object": "-", "action": "nothing to do", "detail": ""}],
        key="upkeep-summary",
        description=f"upkeep: {summary.message(out)}; database time {s.db_ms:.0f} ms",
    )
    log.info("upkeep done", **{k: v for k, v in counts.items() if not isinstance(v, dict)})
    result = {**counts, "rows": rows}
    found = summary.findings(out)
    if found:
        return ProblemsFound(findings=found, summary=f"upkeep found {len(found)} problem(s)", result=result)
    return Done(result=result, message=summary.message(out))


class UpkeepParams(Params):
    dry_run: DryRun = Field(False, description="Report what would change; change nothing.")


def plan_run(planning: Planning, params: UpkeepParams) -> Plan:
    """A table the policy names that does not exist is bad input here, before the lock or the ledger."""
    resolve(planning.conn, planning.policy.upkeep)
    return Plan(work=lambda run: upkeep_run(run, params.dry_run), params={"dry_run": params.dry_run})


def _window_cron(policy: Policy) -> str:
    return policy.upkeep.window.cron


SPEC: JobSpec[Any] = JobSpec(
    name=JOB,
    description=(
        "ANALYZE partitioned tables, rebuild invalid and bloated indexes inside the window, report unused"
        " and duplicate indexes and the tables autovacuum is behind on."
    ),
    params=UpkeepParams,
    plan=plan_run,
    schedule=Cron(_window_cron, timezone=lambda policy: policy.upkeep.window.timezone),
    tags=("maintenance",),
)
