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
rows (kept with ``is_current = false``). Data Docs are rendered from the recorded rows.
An empty window is ``skipped`` except for suites that require rows (learning_events,
system_performance_metrics), which then fail. The flow fails when a suite scores under its
threshold.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from prefect import flow
from prefect.client.schemas.objects import State

from checks import Suite, all_suites
from flows.core import clock, lifecycle, markdown, outcomes, plain, runtime, settings
from flows.core.forms import SuiteName, TargetName
from flows.core.logs import get_logger
from flows.core.outcomes import NOT_PASSED
from flows.core.replay import ReplayContext, Replayed
from flows.quality.alerts import alerts_task
from flows.quality.compiler import Fact, Window
from flows.quality.docs import build_docs, gx_runner
from flows.quality.evaluate import evaluate_suite, gx_outcomes
from flows.quality.options import day_window, parse_day, sample_size_for, select_suites
from flows.quality.recording import markdown_summary, record, run_suites, summary
from flows.quality.verdicts import Outcome

Conn = psycopg.Connection[tuple[Any, ...]]
JOB = "quality"


def replay(conn: Conn, day: date | None, ctx: ReplayContext) -> Replayed:
    """Backfill: every suite over one UTC day (the results supersede the day's earlier ones)."""
    assert day is not None, "quality replays one day"
    policy = ctx.policy.quality
    runs = run_suites(
        conn,
        select_suites(None, policy),
        day_window(day, ctx.now),
        policy,
        flow_run_id=ctx.flow_run_id,
        gx_runner=gx_runner(policy),
    )
    failing = [r for r in runs if r.status in NOT_PASSED]
    counts = {
        "suites": len(runs),
        "suites_failed": len(failing),
        "scores": {r.suite.name: r.score for r in runs},
    }
    if failing:
        return Replayed(True, ", ".join(f"{r.suite.name} {r.status}" for r in failing), counts)
    return Replayed(False, f"{len(runs)} suites passed or skipped", counts)


@runtime.db_task("quality-suite", "quality")
def suite_task(suite_name: str, day_iso: str, now_iso: str) -> dict[str, Any]:
    current = settings.load_settings()
    policy = settings.current_policy(current).quality
    suite = all_suites()[suite_name]
    window = day_window(date.fromisoformat(day_iso), datetime.fromisoformat(now_iso))
    dsn = settings.dsn(current)
    size = sample_size_for(suite, policy)

    def gx_runner(s: Suite, w: Window, facts: list[Fact]) -> list[Outcome]:
        return gx_outcomes(current.state_dir, dsn, s, w, facts, sample_size=size)

    with runtime.connection() as conn:
        run = evaluate_suite(conn, suite, window, policy, gx_runner=gx_runner)
        written = record(conn, run, flow_run_id=runtime.current_flow_run_id())
    out = summary(run)
    out["rows_written"] = written["inserted"]
    out["rows_superseded"] = written["superseded"]
    return out


@runtime.db_task("quality-data-docs", JOB, retries=1)
def docs_task(day_iso: str, now_iso: str, suite_names: list[str], run_name: str) -> str:
    current = settings.load_settings()
    window = day_window(date.fromisoformat(day_iso), datetime.fromisoformat(now_iso))
    with runtime.connection() as conn:
        return str(build_docs(conn, current.state_dir, window, suite_names, run_name))


def _artifacts(day: date, summaries: list[dict[str, Any]], docs: str | None) -> None:
    plain.artifact(
        "markdown",
        key="quality-summary",
        markdown=markdown_summary(day, summaries, Path(docs) if docs else None),
        description=f"Data quality for {day.isoformat()}",
    )
    if docs:
        plain.artifact(
            "link",
            key="quality-data-docs",
            link=Path(docs).resolve().as_uri(),
            link_text=markdown.text(f"GX Data Docs ({day.isoformat()})"),
            description="Great Expectations Data Docs of the day's quality suites",
        )


def quality_run(run: lifecycle.Run, the_day: date, suites: list[Suite]) -> outcomes.Outcome:
    """The job's work inside the lifecycle: every suite over the day, Data Docs, artifacts."""
    log = get_logger(job=JOB)
    policy = run.policy.quality
    now = run.started_at
    day_iso = the_day.isoformat()
    summaries = [suite_task(s.name, day_iso, now.isoformat()) for s in suites]
    docs: str | None = None
    if policy.data_docs:
        run_name = f"quality-{day_iso}-{run.flow_run_id or run.operation_id}"
        docs = docs_task(day_iso, now.isoformat(), [s.name for s in suites], run_name)
    _artifacts(the_day, summaries, docs)
    run.counts["alerts"] = alerts_task(day_iso, now.date().isoformat(), summaries)
    failing = [s for s in summaries if s["status"] in NOT_PASSED]
    run.counts.update(
        suites=len(summaries),
        suites_failed=len(failing),
        rows_written=sum(s["rows_written"] for s in summaries),
        expectations_not_passed=sum(len(s["not_passed"]) for s in summaries),
    )
    log.info("quality checked", day=day_iso, suites=len(summaries), failed=len(failing))
    result = {"day": day_iso, "suites": summaries, "data_docs": docs}
    if failing:
        return outcomes.ProblemsFound(
            findings=[
                f"{s['suite']} {s['status']}"
                + ("" if s["score"] is None else f" (score {s['score']:.1f} < {s['threshold']:.0f})")
                for s in failing
            ],
            summary=f"quality {day_iso}: {len(failing)} suite(s) failed",
            result=result,
        )
    return outcomes.Done(
        result=result, message=f"quality {day_iso}: {len(summaries)} suite(s) passed or skipped"
    )


# parse_day and select_suites check the form's values (one line, "Bad input"), not Prefect.
@flow(name="quality", log_prints=False, validate_parameters=False)
def quality_flow(
    day: date | None = None, suite: SuiteName | None = None, target: TargetName | None = None
) -> State[Any]:
    """Validate the day's window (default: yesterday UTC) with every (or one) GX suite.

    Args:
        day: The UTC day to validate (YYYY-MM-DD). Empty: yesterday.
        suite: Run only this GX suite (e.g. learning_events). Empty: every enabled suite.
        target: The database (a [targets] name of the policy file). Empty: every target.
    """

    def plan() -> lifecycle.Planned:  # in each target: its clock's yesterday, its suites
        with runtime.connection() as conn:  # the day is the database's: its yesterday, never after its today
            today = clock.db_now(conn).date()
        the_day = parse_day(day, today=today)
        suites = select_suites(suite, settings.current_policy().quality)
        # One run per day's window at a time (a backfill item of the same day included); runs of
        # other days, e.g. a backfill's, do not hold up the daily run.
        return lifecycle.Planned(
            work=lambda run: quality_run(run, the_day, suites),
            params={"day": the_day.isoformat(), "suite": suite},
            day=the_day.isoformat(),
        )

    return lifecycle.run_flow(JOB, plan=plan, target=target)
