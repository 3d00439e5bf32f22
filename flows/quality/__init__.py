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

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
from prefect import flow
from prefect.client.schemas.objects import State
from psycopg import sql

from checks import Expectation, Suite, all_suites
from flows.core import clock, lifecycle, outcomes, runtime, settings
from flows.core.catalog import read_children
from flows.core.db import load_sql
from flows.core.errors import ConfigError, PgtenderError
from flows.core.forms import SuiteName
from flows.core.logs import get_logger
from flows.core.masking import mask_secrets
from flows.core.outcomes import NOT_PASSED, CheckStatus
from flows.core.replay import ReplayContext, Replayed
from flows.core.settings import QualityPolicy, QualitySuitePolicy
from flows.quality.compiler import (
    ROW_COUNT,
    Fact,
    Outcome,
    Window,
    build_scan,
    evaluate,
    fetch_samples,
    gx_kwargs,
    run_scan,
)
from flows.quality.results import CheckRow, json_safe, replace_results

Conn = psycopg.Connection[tuple[Any, ...]]
JOB = "quality"
VOLUME_KEY = "row_count_in_band"

# Runs expectations the fused scan does not support through GX: (suite, window, facts) -> outcomes.
GxRunner = Callable[[Suite, Window, list[Fact]], list[Outcome]]


# ---------------------------------------------------------------- input


def parse_day(day: str | date | None, *, today: date | None = None) -> date:
    """``YYYY-MM-DD``; default: yesterday (UTC). Never a day after today."""
    today = today or clock.today()
    if day is None:
        return today - timedelta(days=1)
    parsed = clock.parse_day(day, "day")
    if parsed > today:
        raise ConfigError(f"day {parsed.isoformat()} is in the future (today is {today.isoformat()} UTC)")
    return parsed


def select_suites(suite: str | None, policy: QualityPolicy) -> list[Suite]:
    """The suites to run: one by name, or every enabled one. Unknown names are ConfigErrors."""
    known = all_suites()
    unknown = sorted(set(policy.suites) - set(known))
    if unknown:
        raise ConfigError(f"policy quality.suites.{unknown[0]}: unknown suite; known: {', '.join(known)}")
    if suite is not None:
        if suite not in known:
            raise ConfigError(f"unknown quality suite {suite!r}; known suites: {', '.join(known)}")
        return [known[suite]]
    return [s for name, s in known.items() if _suite_policy(policy, name).enabled]


def validate_options(day: str | None = None, suite: str | None = None) -> None:
    """Pre-flight check for ``pgtender run quality``: bad input fails before any flow run starts."""
    parse_day(day)
    select_suites(suite, settings.current_policy().quality)


def day_window(day: date, now: datetime) -> Window:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return Window(start=start, end=start + timedelta(days=1), now=now)


def _suite_policy(policy: QualityPolicy, name: str) -> QualitySuitePolicy:
    return policy.suites.get(name) or QualitySuitePolicy()


def threshold_for(suite: Suite, policy: QualityPolicy) -> float:
    own = _suite_policy(policy, suite.name).threshold
    return policy.threshold if own is None else own


def weight_for(exp: Expectation, suite: Suite, policy: QualityPolicy) -> float:
    own = _suite_policy(policy, suite.name).weights
    if exp.key in own:
        return own[exp.key]
    return policy.weights.get(exp.type, exp.weight)


def sample_size_for(suite: Suite, policy: QualityPolicy) -> int:
    own = _suite_policy(policy, suite.name).sample_size
    return policy.sample_size if own is None else own


# ---------------------------------------------------------------- window facts


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


# ---------------------------------------------------------------- evaluation


@dataclass
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
    def below_threshold(self) -> bool:
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
    run = SuiteRun(suite, window, threshold_for(suite, policy))
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
            )
        )
        run.details["volume"] = vdetails
    weights = [weight_for(e, suite, policy) for e in exps]
    if info is None:
        message = f"table {suite.table!r} does not exist"
        run.outcomes = [
            _error_outcome(e, dict(e.kwargs), w, message) for e, w in zip(exps, weights, strict=True)
        ]
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

    run.outcomes = [o for o in outcomes if o is not None]
    evaluated = [o for o in run.outcomes if o.status != CheckStatus.SKIPPED]
    total = sum(o.weight for o in evaluated)
    if evaluated and total > 0:
        run.score = round(100.0 * sum(o.weight for o in evaluated if o.success) / total, 4)
    if row_count == 0:
        run.details["reason"] = "no rows in the window"
        if suite.requires_rows:
            run.status, run.score = CheckStatus.FAILED, 0.0
        elif run.score is None:
            run.status = CheckStatus.SKIPPED
    if run.status == CheckStatus.PASSED and run.score is not None and run.score < run.threshold:
        run.status = CheckStatus.FAILED
    if run.status == CheckStatus.PASSED and any(o.status == CheckStatus.ERROR for o in run.outcomes):
        run.details["errors"] = [o.key for o in run.outcomes if o.status == CheckStatus.ERROR]
    return run


def gx_outcomes(
    state_dir: Path, dsn: str, suite: Suite, window: Window, facts: list[Fact], *, sample_size: int
) -> list[Outcome]:
    """Validate ``facts`` with GX itself (query asset of the window); internal errors -> error rows."""
    from flows.quality import gx as gx_runtime  # noqa: PLC0415 - imports GX slow only when needed

    try:
        configs = [gx_runtime.expectation_configuration(f.exp, f.kwargs) for f in facts]
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


# ---------------------------------------------------------------- results


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
            expected={"min_score": run.threshold},
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
        "expectations": len(run.outcomes),
    }


def markdown_summary(day: date, summaries: list[dict[str, Any]], docs: Path | None) -> str:
    lines = [
        f"# Data quality for {day.isoformat()}",
        "",
        "| suite | rows | score | threshold | status | not passed |",
        "|---|---:|---:|---:|---|---|",
    ]
    for s in summaries:
        score = "-" if s["score"] is None else f"{s['score']:.1f}%"
        rows = "-" if s["rows"] is None else str(s["rows"])
        lines.append(
            f"| {s['suite']} | {rows} | {score} | {s['threshold']:.0f}% | {s['status']} | "
            f"{', '.join(s['not_passed']) or '-'} |"
        )
    if docs is not None:
        lines += ["", f"Data Docs: `{docs}`"]
    return "\n".join(lines)


# ---------------------------------------------------------------- Data Docs from recorded rows


def build_docs(
    conn: Conn, state_dir: Path, window: Window, suite_names: Sequence[str], run_name: str
) -> Path:
    """Render the recorded current results of the window as a GX Data Docs site."""
    from flows.quality import gx as gx_runtime  # noqa: PLC0415

    rows = conn.execute(
        "SELECT suite, target, check_name, status, details, sample, expected"
        "  FROM data_quality_checks"
        " WHERE is_current AND starts_with(check_name, 'quality.')"
        "   AND window_start = %(s)s AND window_end = %(e)s AND suite = ANY(%(suites)s)"
        " ORDER BY suite, check_name",
        {"s": window.start, "e": window.end, "suites": list(suite_names)},
    ).fetchall()
    known = all_suites()
    docs: list[gx_runtime.DocsSuite] = []
    by_suite: dict[str, gx_runtime.DocsSuite] = {}
    for suite_name, target, name, status, details, sample, expected in rows:
        if name == f"quality.{suite_name}" or suite_name not in known:
            continue
        entry = by_suite.get(suite_name)
        if entry is None:
            entry = by_suite[suite_name] = gx_runtime.DocsSuite(suite_name, target, window, [])
            docs.append(entry)
        kwargs = {k: v for k, v in (expected or {}).items() if k != "type"}
        entry.results.append(
            gx_runtime.DocsResult(
                key=name.rsplit(".", 1)[-1],
                type=details.get("gx_type", expected.get("type")),
                kwargs=kwargs,
                status=status,
                result=details.get("result") or {},
                sample=sample,
                error=details.get("error"),
            )
        )
    return gx_runtime.build_data_docs(state_dir, run_name, docs)


def gx_runner(policy: QualityPolicy) -> Any:
    """Expectation types the fused scan lacks run through GX (imported only when one does)."""
    current = settings.load_settings()
    dsn = settings.dsn(current)

    def runner(suite: Suite, window: Any, facts: list[Any]) -> list[Any]:
        return gx_outcomes(
            current.state_dir, dsn, suite, window, facts, sample_size=sample_size_for(suite, policy)
        )

    return runner


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


# ---------------------------------------------------------------- Prefect


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
    from prefect.artifacts import create_link_artifact, create_markdown_artifact  # noqa: PLC0415

    create_markdown_artifact(
        key="quality-summary",
        markdown=markdown_summary(day, summaries, Path(docs) if docs else None),
        description=f"Data quality for {day.isoformat()}",
    )
    if docs:
        create_link_artifact(
            key="quality-data-docs",
            link=Path(docs).resolve().as_uri(),
            link_text=f"GX Data Docs ({day.isoformat()})",
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


@flow(name="quality", log_prints=False)
def quality_flow(day: date | None = None, suite: SuiteName | None = None) -> State[Any]:
    """Validate the day's window (default: yesterday UTC) with every (or one) GX suite.

    Args:
        day: The UTC day to validate (YYYY-MM-DD). Empty: yesterday.
        suite: Run only this GX suite (e.g. learning_events). Empty: every enabled suite.
    """
    try:
        with runtime.connection() as conn:  # the day is the database's: its yesterday, never after its today
            today = clock.db_now(conn).date()
        the_day = parse_day(day, today=today)
        suites = select_suites(suite, settings.current_policy().quality)
    except PgtenderError as exc:
        return lifecycle.error_state(exc)
    # One run per day's window at a time (a backfill item of the same day included); runs of other
    # days, e.g. a backfill's, do not hold up the daily run.
    return lifecycle.run_flow(
        JOB,
        lambda run: quality_run(run, the_day, suites),
        params={"day": the_day.isoformat(), "suite": suite},
        day=the_day.isoformat(),
    )
