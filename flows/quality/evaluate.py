"""Evaluating a suite over one day"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql

from checks import ERROR, Expectation, Severity, Suite
from flows.core.db import load_sql
from flows.core.engine.outcomes import NOT_PASSED, CheckStatus
from flows.core.logs import get_logger
from flows.core.partitioning.catalog import read_children
from flows.core.policy.settings import QualityPolicy
from flows.quality.compiler import ROW_COUNT, Fact, Scan, Window, build_scan
from flows.quality.options import VOLUME_KEY, sample_size_for, severity_for, threshold_for, weight_for
from flows.quality.scan import fetch_samples, run_scan
from flows.quality.verdicts import Outcome, error_outcome, evaluate, suite_verdict

Conn = psycopg.Connection[tuple[Any, ...]]
JOB = "quality"
__all__ = ["VOLUME_KEY", "SuiteRun", "check_name", "evaluate_suite", "volume_band"]

# Runs expectations the fused scan does not support through GX: (suite, window, facts) -> outcomes.
GxRunner = Callable[[Suite, Window, list[Fact]], list[Outcome]]


def check_name(suite: Suite, key: str | None = None) -> str:
    return f"quality.{suite.name}" if key is None else f"quality.{suite.name}.{key}"


def partition_info(conn: Conn, suite: Suite, day: date) -> dict[str, Any] | None:
    """None when the table does not exist; otherwise whether it is partitioned and the partition
    whose bounds (read from the catalog, whatever its name or interval) hold the whole day."""
    row = conn.execute(load_sql("queries/quality/partition.sql"), {"table": suite.table}).fetchone()
    if row is None:
        return None
    oid, partitioned = int(row[0]), bool(row[1])
    info: dict[str, Any] = {"partitioned": partitioned}
    if not partitioned:
        return info
    start = datetime.combine(day, time(0), tzinfo=UTC)
    end = start + timedelta(days=1)
    children = read_children(conn, [oid]).get(oid, [])
    holding = [
        c.name for c in children if c.lo is not None and c.hi is not None and c.lo <= start and end <= c.hi
    ]
    default = [c.name for c in children if c.is_default]
    if holding:
        info["partition"] = holding[0]
    else:
        info["partition"] = default[0] if default else None
        info["note"] = "no partition covers the day: only the DEFAULT partition can hold its rows"
    return info


def volume_band(
    conn: Conn, suite: Suite, window: Window, policy: QualityPolicy
) -> tuple[int, int | None, dict[str, Any]]:
    """Row-count band learned from the previous days: earlier results first, counts for the rest."""
    days = policy.volume_lookback_days
    since = window.start - timedelta(days=days)
    seen: dict[datetime, int] = {}
    for start, count in conn.execute(
        load_sql("queries/quality/volume_history.sql"),
        {
            "check_name": check_name(suite, VOLUME_KEY),
            "target": suite.table,
            "since": since,
            "before": window.start,
        },
    ).fetchall():
        seen[start] = int(count)
    missing = [window.start - timedelta(days=i) for i in range(1, days + 1)]
    missing = [d for d in missing if d not in seen]
    if missing:
        tcol = sql.Identifier(suite.time_column)
        query = sql.SQL(
            "SELECT d, (SELECT count(*) FROM {t} WHERE {c} >= d AND {c} < d + interval '1 day')"
            " FROM unnest(%(days)s::timestamptz[]) AS d"
        ).format(t=sql.Identifier(suite.table), c=tcol)
        for start, count in conn.execute(query, {"days": missing}, prepare=False).fetchall():
            seen[start] = int(count)
    history = [n for n in seen.values() if n > 0]
    details: dict[str, Any] = {"lookback_days": days, "days_with_rows": len(history)}
    if not history:
        details["note"] = "no earlier day has rows: the band is only 'not empty'"
        return 1, None, details
    median = statistics.median(history)
    details["median"] = median
    low = max(1, int(median * policy.volume_low_ratio))
    high = int(median * policy.volume_high_ratio + 0.999999)
    return low, high, details


@dataclass(kw_only=True)
class SuiteRun:
    suite: Suite
    window: Window
    threshold: float
    outcomes: list[Outcome] = field(default_factory=list)
    row_count: int | None = None
    score: float | None = None
    status: CheckStatus = CheckStatus.PASSED
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        """The suite failed (an error expectation, the score, no rows) or could not be evaluated."""
        return self.status in NOT_PASSED


def _scan_isolated(
    conn: Conn, suite: Suite, window: Window, exps: list[Expectation]
) -> tuple[int | None, dict[int, Any], dict[int, str]]:
    """After the fused statement failed: each expectation alone, to find the broken one(s)."""
    row_count: int | None = None
    metrics: dict[int, Any] = {}
    errors: dict[int, str] = {}
    for index, exp in enumerate(exps):
        scan = build_scan(suite, [exp], window)
        try:
            n, m = run_scan(conn, scan)
        except psycopg.Error as exc:
            errors[index] = f"{type(exc).__name__}: {exc}"
            continue
        row_count = n
        metrics[index] = m[0]
    return row_count, metrics, errors


def evaluate_suite(
    conn: Conn,
    suite: Suite,
    window: Window,
    policy: QualityPolicy,
    *,
    gx_runner: GxRunner | None = None,
) -> SuiteRun:
    """Validate one suite over one window (no writes)."""
    run = SuiteRun(suite=suite, window=window, threshold=threshold_for(suite, policy))
    run.details = {
        "table": suite.table,
        "time_column": suite.time_column,
        "scope": suite.scope,
        "window": [window.start.isoformat(), window.end.isoformat()],
    }
    exps = list(suite.expectations)
    info = partition_info(conn, suite, window.start.date())
    if suite.volume and info is not None:
        exps.append(_volume_expectation(conn, run, policy))
    weights = [weight_for(e, suite, policy) for e in exps]
    severities = [severity_for(e, suite, policy) for e in exps]
    if info is None:
        return _table_missing(run, exps, weights, severities)
    run.details.update(info)

    scan = build_scan(suite, exps, window, sample_size=sample_size_for(suite, policy))
    row_count, metrics, errors = _run_fused_scan(conn, run, scan, exps)
    run.row_count = row_count
    outcomes, failed_facts, gx_facts = _scanned_outcomes(scan, row_count, metrics, errors, weights)
    if failed_facts:
        _attach_samples(conn, run, scan, failed_facts, outcomes=outcomes, metrics=metrics, policy=policy)
    if gx_facts:
        _gx_fact_outcomes(run, gx_facts, outcomes, weights=weights, gx_runner=gx_runner)

    for index, found in enumerate(outcomes):
        if found is not None:
            found.severity = severities[index]
    run.outcomes = [o for o in outcomes if o is not None]
    verdict = suite_verdict(
        run.outcomes, row_count=row_count, requires_rows=suite.requires_rows, threshold=run.threshold
    )
    run.status, run.score = verdict.status, verdict.score
    run.details.update(verdict.details)
    return run


def _volume_expectation(conn: Conn, run: SuiteRun, policy: QualityPolicy) -> Expectation:
    """The row-count band learned from recent days, as an expectation (its details on ``run``)."""
    low, high, vdetails = volume_band(conn, run.suite, run.window, policy)
    run.details["volume"] = vdetails
    return Expectation(
        VOLUME_KEY,
        ROW_COUNT,
        {"min_value": low, "max_value": high} if high is not None else {"min_value": low},
        notes="volume band learned from recent days",
        severity=ERROR,  # a collapsed day is the incident the suite exists to catch
    )


def _table_missing(
    run: SuiteRun, exps: list[Expectation], weights: list[float], severities: list[Severity]
) -> SuiteRun:
    """Every expectation an error row: the suite's table does not exist."""
    message = f"table {run.suite.table!r} does not exist"
    run.outcomes = [error_outcome(e, dict(e.kwargs), w, message) for e, w in zip(exps, weights, strict=True)]
    for outcome, severity in zip(run.outcomes, severities, strict=True):
        outcome.severity = severity
    run.status, run.score = CheckStatus.ERROR, 0.0
    run.details["error"] = message
    return run


def _run_fused_scan(
    conn: Conn, run: SuiteRun, scan: Scan, exps: list[Expectation]
) -> tuple[int, dict[int, Any], dict[int, str]]:
    """The fused statement; when it fails, each expectation alone (errors by fact index)."""
    try:
        row_count, metrics = run_scan(conn, scan)
    except psycopg.Error as exc:
        get_logger(job=JOB, suite=run.suite.name).warning("fused scan failed; isolating", error=str(exc))
        iso_count, iso_metrics, errors = _scan_isolated(conn, run.suite, run.window, exps)
        return (iso_count if iso_count is not None else 0), iso_metrics, errors
    return row_count, metrics, {}


def _scanned_outcomes(
    scan: Scan, row_count: int, metrics: dict[int, Any], errors: dict[int, str], weights: list[float]
) -> tuple[list[Outcome | None], list[Fact], list[Fact]]:
    """Outcomes of the facts the scan measured (by fact index; None for the GX ones), the failed
    facts that still need a sample, and the facts only GX can evaluate."""
    outcomes: list[Outcome | None] = [None] * len(weights)
    failed_facts: list[Fact] = []
    gx_facts: list[Fact] = []
    for fact in scan.facts:
        weight = weights[fact.index]
        if fact.index in errors:
            outcomes[fact.index] = error_outcome(fact.exp, fact.kwargs, weight, errors[fact.index])
            continue
        if not fact.supported:
            gx_facts.append(fact)
            continue
        if row_count == 0 and fact.exp.type != ROW_COUNT:
            outcomes[fact.index] = _no_rows_outcome(fact, weight, {"element_count": 0})
            continue
        success, result = evaluate(fact, row_count, metrics[fact.index])
        outcome = Outcome(
            fact.exp,
            fact.kwargs,
            weight,
            CheckStatus.PASSED if success else CheckStatus.FAILED,
            success,
            result,
        )
        outcomes[fact.index] = outcome
        if not success and "sample" in metrics[fact.index]:
            outcome.sample = list(metrics[fact.index]["sample"] or [])
        elif not success:
            failed_facts.append(fact)
    return outcomes, failed_facts, gx_facts


def _no_rows_outcome(
    fact: Fact, weight: float, result: dict[str, Any], engine: str = "fused-scan"
) -> Outcome:
    """Skipped: the window has no rows (``engine``: "gx" for an expectation GX would evaluate)."""
    return Outcome(
        fact.exp,
        fact.kwargs,
        weight,
        CheckStatus.SKIPPED,
        None,
        result,
        None,
        {"reason": "no rows in the window"},
        engine,
    )


def _attach_samples(
    conn: Conn,
    run: SuiteRun,
    scan: Scan,
    failed_facts: list[Fact],
    *,
    outcomes: list[Outcome | None],
    metrics: dict[int, Any],
    policy: QualityPolicy,
) -> None:
    """Samples of the offenders of the failed facts onto their outcomes; none when the query fails."""
    try:
        samples = fetch_samples(
            conn,
            run.suite,
            scan,
            failed_facts,
            window=run.window,
            limit=sample_size_for(run.suite, policy),
            counts={f.index: int(metrics[f.index].get("unexpected_count") or 0) for f in failed_facts},
        )
    except psycopg.Error as exc:  # a sample is a courtesy: the counts above stand
        get_logger(job=JOB, suite=run.suite.name).warning("sample query failed", error=str(exc))
        samples = {}
    for index, sample in samples.items():
        sampled = outcomes[index]
        if sampled is not None:
            sampled.sample = sample


def _gx_fact_outcomes(
    run: SuiteRun,
    gx_facts: list[Fact],
    outcomes: list[Outcome | None],
    *,
    weights: list[float],
    gx_runner: GxRunner | None,
) -> None:
    """Outcomes of the facts the fused scan lacks: skipped without rows, else GX's (or an error)."""
    if run.row_count == 0:
        for fact in gx_facts:
            outcomes[fact.index] = _no_rows_outcome(fact, weights[fact.index], {}, "gx")
    elif gx_runner is None:
        for fact in gx_facts:
            outcomes[fact.index] = error_outcome(
                fact.exp, fact.kwargs, weights[fact.index], "no GX runner for a type the fused scan lacks"
            )
    else:
        for fact, outcome in zip(gx_facts, gx_runner(run.suite, run.window, gx_facts), strict=True):
            outcome.weight = weights[fact.index]
            outcomes[fact.index] = outcome
