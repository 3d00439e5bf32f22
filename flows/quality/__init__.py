"""Daily data quality: the GX suites of ``checks/`` over one UTC day, into data_quality_checks.

How a suite is validated (the cost of about one scan of the day):

1. One fused statement over the day's half-open range (pruned to one partition) computes, for
   every expectation GX type the fused scan supports, the very metrics GX computes on PostgreSQL;
   success follows GX's rules (``flows/quality/compiler.py``).
2. Only for the expectations that failed, one ``LIMIT``-bounded statement fetches a sample of
   offending keys/values.
3. Expectation types the fused scan does not know run through GX itself, on a GX query asset of
   the same window; a GX (or SQL) internal error becomes an ``error`` row, never a pass.

Results: one current row per expectation (``quality.<suite>.<key>``) and one per suite
(``quality.<suite>``, with the weighted score) for the window; a re-run supersedes the previous
rows (kept with ``is_current = false``). Data Docs are rendered from the recorded rows, by the
daily run and by a backfill alike, and show each suite's verdict (``verdicts.suite_verdict``).
An empty window is ``skipped`` except for suites that require rows (learning_events,
system_performance_metrics), which then fail. A suite fails when one of its ``error``-severity
expectations does not pass (volume, freshness, key uniqueness, references: ``checks/``) whatever
its score, or when it scores under its threshold; ``warn`` expectations only lower the score (the
suite is then ``warning``, which neither fails the run nor pages).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from pydantic import Field

from checks import Suite, all_suites
from flows.core import markdown
from flows.core.engine import (
    NOT_PASSED,
    Cron,
    Done,
    JobSpec,
    LockScope,
    Params,
    Plan,
    Planning,
    ProblemsFound,
    ReplayContext,
    Replayed,
    Replays,
    Run,
    step,
)
from flows.core.engine import Outcome as RunOutcome
from flows.core.engine.forms import SuiteName
from flows.core.logs import get_logger
from flows.quality.alerts import alerts_step
from flows.quality.compiler import Fact, Window
from flows.quality.docs import build_docs, gx_runner
from flows.quality.evaluate import evaluate_suite
from flows.quality.gx_validation import gx_outcomes
from flows.quality.options import day_window, parse_day, sample_size_for, select_suites
from flows.quality.recording import finding, markdown_summary, record, run_suites, summary
from flows.quality.verdicts import Outcome

Conn = psycopg.Connection[tuple[Any, ...]]
JOB = "quality"


def replay(conn: Conn, day: date | None, ctx: ReplayContext) -> Replayed:
    """Backfill: every suite over one UTC day (the results supersede the day's earlier ones)."""
    assert day is not None, "quality replays one day"
    policy = ctx.policy.quality
    suites = select_suites(None, policy)
    window = day_window(day, ctx.now)
    runner = gx_runner(policy, ctx.state_dir, ctx.dsn)
    runs = run_suites(conn, suites, window, policy, flow_run_id=ctx.flow_run_id, gx_runner=runner)
    docs: Path | None = None
    if policy.data_docs:  # the days a backfill validated get their Data Docs, as a daily run's do
        run_name = f"quality-{day.isoformat()}-{ctx.flow_run_id or ctx.operation_id or 'backfill'}"
        state_dir = ctx.state_dir
        # the suites' pages and the index once, with the range's last day (their cost grows)
        last = ctx.days is None or day >= ctx.days[1]
        names = [s.name for s in suites]
        docs = build_docs(
            conn, state_dir, window, names, run_name, keep_days=policy.data_docs_days, full=last
        )
    failing = [r for r in runs if r.failing]
    counts = {
        "suites": len(runs),
        "suites_failed": len(failing),
        "scores": {r.suite.name: r.score for r in runs},
        "data_docs": None if docs is None else str(docs),
    }
    if failing:
        return Replayed(True, ", ".join(finding(summary(r)) for r in failing), counts)
    return Replayed(False, f"{len(runs)} suites passed or skipped", counts)


@step("quality-suite")
def suite_step(run: Run, suite_name: str, day_iso: str) -> dict[str, Any]:
    policy = run.policy.quality
    suite = all_suites()[suite_name]
    window = day_window(date.fromisoformat(day_iso), run.started_at)
    size = sample_size_for(suite, policy)

    def gx_runner(s: Suite, w: Window, facts: list[Fact]) -> list[Outcome]:
        return gx_outcomes(run.state_dir, run.target.dsn, s, w, facts, sample_size=size)

    with run.connection() as conn:
        evaluated = evaluate_suite(conn, suite, window, policy, gx_runner=gx_runner)
        written = record(conn, evaluated, flow_run_id=run.flow_run_id)
    out = summary(evaluated)
    out["rows_written"] = written["inserted"]
    out["rows_superseded"] = written["superseded"]
    return out


@step("quality-data-docs", retries=1)
def docs_step(run: Run, day_iso: str, suite_names: list[str], run_name: str) -> str:
    window = day_window(date.fromisoformat(day_iso), run.started_at)
    keep_days = run.policy.quality.data_docs_days
    with run.connection() as conn:
        return str(build_docs(conn, run.state_dir, window, suite_names, run_name, keep_days=keep_days))


def _artifacts(run: Run, day: date, summaries: list[dict[str, Any]], docs: str | None) -> None:
    run.artifact(
        "markdown",
        key="quality-summary",
        markdown=markdown_summary(day, summaries, Path(docs) if docs else None),
        description=f"Data quality for {day.isoformat()}",
    )
    if docs:
        run.artifact(
            "link",
            key="quality-data-docs",
            link=Path(docs).resolve().as_uri(),
            link_text=markdown.text(f"GX Data Docs ({day.isoformat()})"),
            description="Great Expectations Data Docs of the day's quality suites",
        )


def quality_run(run: Run, the_day: date, suites: list[Suite]) -> RunOutcome:
    """The job's work: every suite over the day, Data Docs, artifacts."""
    log = get_logger(job=JOB)
    policy = run.policy.quality
    day_iso = the_day.isoformat()
    summaries = []
    for s in suites:
        summaries.append(suite_step(run, s.name, day_iso))
        run.record(suites_done=len(summaries))
    docs: str | None = None
    if policy.data_docs:
        run_name = f"quality-{day_iso}-{run.flow_run_id or run.operation_id}"
        docs = docs_step(run, day_iso, [s.name for s in suites], run_name)
    _artifacts(run, the_day, summaries, docs)
    run.record(alerts=alerts_step(run, day_iso, run.started_at.date().isoformat(), summaries))
    failing = [s for s in summaries if s["status"] in NOT_PASSED]
    run.record(
        suites=len(summaries),
        suites_failed=len(failing),
        rows_written=sum(s["rows_written"] for s in summaries),
        expectations_not_passed=sum(len(s["not_passed"]) for s in summaries),
    )
    log.info("quality checked", day=day_iso, suites=len(summaries), failed=len(failing))
    result = {"day": day_iso, "suites": summaries, "data_docs": docs}
    if failing:
        return ProblemsFound(
            findings=[finding(s) for s in failing],
            summary=f"quality {day_iso}: {len(failing)} suite(s) failed",
            result=result,
        )
    return Done(result=result, message=f"quality {day_iso}: {len(summaries)} suite(s) passed or skipped")


class QualityParams(Params):
    day: date | None = Field(None, description="The UTC day to validate (YYYY-MM-DD). Empty: yesterday.")
    suite: SuiteName | None = Field(
        None, description="Run only this GX suite (e.g. learning_events). Empty: every enabled suite."
    )


def plan_run(planning: Planning, params: QualityParams) -> Plan:
    """The day is the database's: its yesterday, never after its today. One run per day's window at
    a time (a backfill item of the same day included); runs of other days do not hold it up."""
    the_day = parse_day(params.day, today=planning.now.date())
    suites = select_suites(params.suite, planning.policy.quality)
    return Plan(
        work=lambda run: quality_run(run, the_day, suites),
        params={"day": the_day.isoformat(), "suite": params.suite},
        day=the_day,
    )


def check(policy: Any, params: QualityParams) -> None:
    """An unknown suite is bad input before any target is touched."""
    select_suites(params.suite, policy.quality)


SPEC = JobSpec(
    name=JOB,
    description="Validate the day's window (default: yesterday UTC) with every (or one) GX suite.",
    params=QualityParams,
    plan=plan_run,
    schedule=Cron("0 1 * * *"),
    lock=LockScope.DAY,
    tags=("quality",),
    replay=Replays(replay, default=True),
    check=check,
)
