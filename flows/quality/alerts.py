"""Quality suites as alert observations (one per suite, ``quality.<suite>``). Only the newest day
pages: the daily run over yesterday (or a re-run of it). A backfill or a run over an older day
records its results without paging about the past."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flows.alerts import alerting
from flows.core.engine import NOT_PASSED, Run, step

JOB = "quality"


def observations(day: date, summaries: list[dict[str, Any]]) -> list[alerting.Observation]:
    out = []
    for s in summaries:
        failing = s["status"] in NOT_PASSED
        score = None if s["score"] is None else round(float(s["score"]), 1)
        keys = ", ".join(s["not_passed"][:5]) or "-"
        out.append(
            alerting.Observation(
                check_name=f"quality.{s['suite']}",
                failing=failing,
                observed={"score": score, "rows": s["rows"], "not_passed": s["not_passed"][:20]},
                limit=f"error-severity expectations pass and score >= {s['threshold']:g}",
                summary=(
                    f"quality suite {s['suite']} {s['status']} for {day.isoformat()}"
                    + (f" ({s['verdict']})" if s.get("verdict") else "")
                    + f": score {score}, limit {s['threshold']:g}; not passed: {keys}"
                ),
                next_command=(
                    f"pgtender run quality --day {day.isoformat()} --suite {s['suite']}"
                    "  # after fixing the data; Data Docs show the offending rows"
                    if failing
                    else ""
                ),
            )
        )
    return out


@step("quality-alerts", retries=0)
def alerts_step(run: Run, day_iso: str, today_iso: str, summaries: list[dict[str, Any]]) -> dict[str, int]:
    """Record the suites of yesterday's run (nothing for older days): the pages and resolves that
    become due go out after the run, outside its lock."""
    day = date.fromisoformat(day_iso)
    if day != date.fromisoformat(today_iso) - timedelta(days=1):
        return {"pages_due": 0, "resolves_due": 0}
    with run.connection() as conn:
        return alerting.record(
            conn, JOB, observations(day, summaries), target=run.target.name, complete=False
        )
