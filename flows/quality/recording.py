"""A suite run as data_quality_checks rows, recorded; its summary for artifacts and logs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from checks import ERROR, Suite
from flows.core import markdown
from flows.core.engine.outcomes import NOT_PASSED, CheckStatus
from flows.core.policy.settings import QualityPolicy
from flows.quality.compiler import Fact, Window, gx_kwargs
from flows.quality.evaluate import SuiteRun, check_name, evaluate_suite
from flows.quality.results import CheckRow, json_safe, replace_results
from flows.quality.verdicts import Outcome

Conn = psycopg.Connection[tuple[Any, ...]]

# Runs expectations the fused scan does not support through GX: (suite, window, facts) -> outcomes.
GxRunner = Callable[[Suite, Window, list[Fact]], list[Outcome]]


def to_rows(run: SuiteRun) -> list[CheckRow]:
    suite = run.suite
    rows: list[CheckRow] = []
    for o in run.outcomes:
        mostly = o.kwargs.get("mostly")
        rows.append(
            CheckRow(
                check_name=check_name(suite, o.key),
                suite=suite.name,
                target=suite.table,
                status=o.status,
                observed_value=o.observed_value if "observed_value" in o.result else o.unexpected_count,
                expected={"type": o.type, **gx_kwargs(o.exp, o.kwargs)},
                threshold=None if mostly is None else float(mostly),
                unexpected_count=o.unexpected_count,
                unexpected_percent=_clamp_pct(o.unexpected_percent),
                sample=o.sample,
                details={
                    "gx_type": o.type,
                    "engine": o.engine,
                    "weight": o.weight,
                    "severity": o.severity,
                    "result": json_safe(o.result),
                    **o.details,
                },
            )
        )
    failed = [o.key for o in run.outcomes if o.status in NOT_PASSED]
    rows.append(
        CheckRow(
            check_name=check_name(suite),
            suite=suite.name,
            target=suite.table,
            status=run.status,
            observed_value={"rows": run.row_count, "score": run.score},
            # the suite passes when every error-severity expectation passes and the score holds
            expected={
                "min_score": run.threshold,
                "must_pass": [o.key for o in run.outcomes if o.severity == ERROR],
            },
            threshold=run.threshold,
            score=run.score,
            details={
                **run.details,
                "expectations": len(run.outcomes),
                "passed": sum(1 for o in run.outcomes if o.status == CheckStatus.PASSED),
                "not_passed": failed,
                "skipped": sum(1 for o in run.outcomes if o.status == CheckStatus.SKIPPED),
            },
        )
    )
    return rows


def _clamp_pct(value: float | None) -> float | None:
    return None if value is None else min(100.0, max(0.0, value))


def record(conn: Conn, run: SuiteRun, *, flow_run_id: str | None) -> dict[str, int]:
    return replace_results(
        conn,
        suite=run.suite.name,
        window_start=run.window.start,
        window_end=run.window.end,
        rows=to_rows(run),
        flow_run_id=flow_run_id,
    )


def run_suites(
    conn: Conn,
    suites: Sequence[Suite],
    window: Window,
    policy: QualityPolicy,
    *,
    flow_run_id: str | None = None,
    gx_runner: GxRunner | None = None,
) -> list[SuiteRun]:
    """The flow's core without Prefect: validate and record every suite for the window."""
    runs = []
    for suite in suites:
        run = evaluate_suite(conn, suite, window, policy, gx_runner=gx_runner)
        record(conn, run, flow_run_id=flow_run_id)
        runs.append(run)
    return runs


def summary(run: SuiteRun) -> dict[str, Any]:
    return {
        "suite": run.suite.name,
        "status": run.status,
        "score": run.score,
        "threshold": run.threshold,
        "rows": run.row_count,
        "not_passed": [o.key for o in run.outcomes if o.status in NOT_PASSED],
        "blocking": list(run.details.get("blocking", [])),
        "verdict": str(run.details.get("verdict", "")),
        "expectations": len(run.outcomes),
    }


def finding(s: dict[str, Any]) -> str:
    """One line for a suite that failed: what failed it, and its score (the trend)."""
    line = f"{s['suite']} {s['status']}"
    if s.get("verdict"):
        line += f": {s['verdict']}"
    if s["score"] is not None and "score" not in line:
        line += f" (score {s['score']:.1f})"
    return line


def markdown_summary(day: date, summaries: list[dict[str, Any]], docs: Path | None) -> str:
    """The quality-summary artifact (every value escaped: suite and check names render as written)."""
    body = [
        (
            s["suite"],
            "-" if s["rows"] is None else str(s["rows"]),
            "-" if s["score"] is None else f"{s['score']:.1f}%",
            f"{s['threshold']:.0f}%",
            s["status"],
            s.get("verdict") or "-",
            ", ".join(s["not_passed"]) or "-",
        )
        for s in summaries
    ]
    lines = [
        f"# Data quality for {day.isoformat()}",
        "",
        *markdown.table(
            ("suite", "rows", "score", "threshold", "status", "why", "not passed"), body, right=(1, 2, 3)
        ),
    ]
    if docs is not None:
        lines += ["", f"Data Docs: {markdown.text(docs)}"]
    return "\n".join(lines)
