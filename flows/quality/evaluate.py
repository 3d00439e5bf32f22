"""Evaluating a suite over one day"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from checks import ERROR, Expectation, Suite
from flows.core.db import load_sql
from flows.core.engine.outcomes import NOT_PASSED, CheckStatus
from flows.core.logs import get_logger
from flows.core.masking import mask_secrets
from flows.core.partitioning.catalog import read_children
from flows.core.policy.settings import QualityPolicy
from flows.quality.compiler import ROW_COUNT, Fact, Window, build_scan
from flows.quality.options import VOLUME_KEY, sample_size_for, severity_for, threshold_for, weight_for
from flows.quality.scan import fetch_samples, run_scan
from flows.quality.verdicts import Outcome, evaluate, suite_verdict

Conn = psycopg.Connection[tuple[Any, ...]]
JOB = "quality"
__all__ = ["VOLUME_KEY", "SuiteRun", "check_name", "evaluate_suite", "gx_outcomes", "volume_band"]

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


def _error_outcome(exp: Expectation, kwargs: dict[str, Any], weight: float, message: str) -> Outcome:
    # GX/SQLAlchemy messages may quote the connection URL: mask before it reaches a table or a log.
    text = mask_secrets(" ".join(message.split()))[:2000]
    return Outcome(exp, kwargs, weight, CheckStatus.ERROR, False, {}, None, {"error": text})


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
    log = get_logger(job=JOB, suite=suite.name)
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
        low, high, vdetails = volume_band(conn, suite, window, policy)
        exps.append(
            Expectation(
                VOLUME_KEY,
                ROW_COUNT,
                {"min_value": low, "max_value": high} if high is not None else {"min_value": low},
                notes="volume band learned from recent days",
                severity=ERROR,  # a collapsed day is the incident the suite exists to catch
            )
        )
        run.details["volume"] = vdetails
    weights = [weight_for(e, suite, policy) for e in exps]
    severities = [severity_for(e, suite, policy) for e in exps]
    if info is None:
        message = f"table {suite.table!r} does not exist"
        run.outcomes = [
            _error_outcome(e, dict(e.kwargs), w, message) for e, w in zip(exps, weights, strict=True)
        ]
        for outcome, severity in zip(run.outcomes, severities, strict=True):
            outcome.severity = severity
        run.status, run.score = CheckStatus.ERROR, 0.0
        run.details["error"] = message
        return run
    run.details.update(info)

    scan = build_scan(suite, exps, window, sample_size=sample_size_for(suite, policy))
    errors: dict[int, str] = {}
    try:
        row_count, metrics = run_scan(conn, scan)
    except psycopg.Error as exc:
        log.warning("fused scan failed; isolating", error=str(exc))
        iso_count, metrics, errors = _scan_isolated(conn, suite, window, exps)
        row_count = iso_count if iso_count is not None else 0
    run.row_count = row_count

    outcomes: list[Outcome | None] = [None] * len(exps)
    failed_facts: list[Fact] = []
    gx_facts: list[Fact] = []
    for fact in scan.facts:
        weight = weights[fact.index]
        if fact.index in errors:
            outcomes[fact.index] = _error_outcome(fact.exp, fact.kwargs, weight, errors[fact.index])
            continue
        if not fact.supported:
            gx_facts.append(fact)
            continue
        if row_count == 0 and fact.exp.type != ROW_COUNT:
            outcomes[fact.index] = Outcome(
                fact.exp,
                fact.kwargs,
                weight,
                CheckStatus.SKIPPED,
                None,
                {"element_count": 0},
                None,
                {"reason": "no rows in the window"},
            )
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

    if failed_facts:
        try:
            samples = fetch_samples(
                conn,
                suite,
                scan,
                failed_facts,
                window=window,
                limit=sample_size_for(suite, policy),
                counts={f.index: int(metrics[f.index].get("unexpected_count") or 0) for f in failed_facts},
            )
        except psycopg.Error as exc:  # a sample is a courtesy: the counts above stand
            log.warning("sample query failed", error=str(exc))
            samples = {}
        for index, sample in samples.items():
            sampled = outcomes[index]
            if sampled is not None:
                sampled.sample = sample

    if gx_facts:
        if row_count == 0:
            for fact in gx_facts:
                outcomes[fact.index] = Outcome(
                    fact.exp,
                    fact.kwargs,
                    weights[fact.index],
                    CheckStatus.SKIPPED,
                    None,
                    {},
                    None,
                    {"reason": "no rows in the window"},
                    "gx",
                )
        elif gx_runner is None:
            for fact in gx_facts:
                outcomes[fact.index] = _error_outcome(
                    fact.exp, fact.kwargs, weights[fact.index], "no GX runner for a type the fused scan lacks"
                )
        else:
            for fact, outcome in zip(gx_facts, gx_runner(suite, window, gx_facts), strict=True):
                outcome.weight = weights[fact.index]
                outcomes[fact.index] = outcome

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


def gx_outcomes(
    state_dir: Path, dsn: str, suite: Suite, window: Window, facts: list[Fact], *, sample_size: int
) -> list[Outcome]:
    """Validate ``facts`` with GX itself (query asset of the window); internal errors -> error rows."""
    from flows.quality import gx as gx_runtime  # noqa: PLC0415 - imports GX slow only when needed

    try:
        configs = [
            gx_runtime.expectation_configuration(f.exp, f.kwargs, severity=f.exp.severity) for f in facts
        ]
        validation = gx_runtime.validate_with_gx(
            state_dir,
            dsn,
            suite,
            window,
            configs,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": sample_size},
        )
    except Exception as exc:  # noqa: BLE001 - any GX failure must become an error row, never a pass
        return [
            _error_outcome(f.exp, f.kwargs, f.exp.weight, f"GX: {type(exc).__name__}: {exc}") for f in facts
        ]
    by_key = {r.expectation_config.meta.get("pgtender_key"): r for r in validation.results}
    out: list[Outcome] = []
    for fact in facts:
        res = by_key.get(fact.exp.key)
        if res is None:
            out.append(_error_outcome(fact.exp, fact.kwargs, fact.exp.weight, "GX returned no result"))
            continue
        raised = _gx_exception(res.exception_info or {})
        if raised is not None:
            out.append(_error_outcome(fact.exp, fact.kwargs, fact.exp.weight, f"GX: {raised}"))
            continue
        result = dict(res.result or {})
        sample = result.pop("partial_unexpected_list", None)
        result.pop("partial_unexpected_counts", None)
        result.pop("partial_unexpected_index_list", None)
        success = bool(res.success)
        out.append(
            Outcome(
                fact.exp,
                fact.kwargs,
                fact.exp.weight,
                CheckStatus.PASSED if success else CheckStatus.FAILED,
                success,
                result,
                None if success else sample,
                {},
                "gx",
            )
        )
    return out


def _gx_exception(info: dict[str, Any]) -> str | None:
    """GX's exception_info is flat, or keyed by metric id (one entry per failed metric)."""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "GX raised an exception")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "GX raised an exception")
    return None
