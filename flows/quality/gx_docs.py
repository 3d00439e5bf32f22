"""GX Data Docs of the recorded results: each suite's verdict and each expectation's severity.

Built by every quality run and by a backfill for each day it validated, into
``<state dir>/quality/data_docs``. The suites and validation results behind the pages are kept under
``<state dir>/quality/gx`` (``gx.context``), so a site built by one process (a CLI backfill) keeps
the pages of another (the served daily job); results older than ``quality.data_docs_days`` (by the
time they ran) are dropped, and their pages with them, when the index is rebuilt.

A suite's page says Failed exactly when pgtender's verdict (its suite row) is failed or error; each
expectation carries its severity as GX's ``FailureSeverity`` (``error`` -> critical, ``warn`` ->
warning), so GX's ``get_max_severity_failure()`` is critical exactly when an ``error`` expectation
failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from checks import WARN
from flows.core.engine.outcomes import NOT_PASSED
from flows.core.logs import get_logger
from flows.quality.compiler import Window
from flows.quality.gx import _gx_turn, context, docs_dir, gx_severity, gx_suite
from flows.quality.offline_docs import make_offline

SAMPLE_SHOWN = 20


@dataclass(kw_only=True)
class DocsResult:
    """One recorded expectation result, as Data Docs shows it."""

    key: str
    type: str
    kwargs: dict[str, Any]
    status: str
    result: dict[str, Any]
    sample: list[Any] | None = None
    error: str | None = None
    severity: str = WARN


@dataclass
class DocsSuite:
    """One suite's recorded results; ``status`` is pgtender's verdict (its suite row's status).

    Without a status (a site built from bare results) GX's own rule applies: every evaluated
    expectation passed.
    """

    name: str
    table: str
    window: Window
    results: list[DocsResult]
    status: str | None = None
    verdict: dict[str, Any] = field(default_factory=dict)

    def success(self) -> bool:
        if self.status is not None:
            return self.status not in NOT_PASSED
        return all(r.status == "passed" for r in self.results if r.status != "skipped")


def build_data_docs(
    state_dir: Path, run_name: str, suites: Sequence[DocsSuite], *, keep_days: int = 31, full: bool = True
) -> Path:
    """Render recorded results (fused scan or GX) as a GX Data Docs site; returns its index.html.

    ``full=False`` writes only the validation pages (a backfill's days but its last: the suites'
    pages and the index, whose cost grows with the site, are rebuilt once, at the end).
    """
    with _gx_turn:
        return _build_data_docs(state_dir, run_name, suites, keep_days=keep_days, full=full)


def _build_data_docs(
    state_dir: Path, run_name: str, suites: Sequence[DocsSuite], *, keep_days: int, full: bool
) -> Path:
    from great_expectations.core.run_identifier import RunIdentifier  # noqa: PLC0415
    from great_expectations.data_context.types.resource_identifiers import (  # noqa: PLC0415
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    ctx = context(state_dir)
    site = docs_dir(state_dir)
    before = _page_times(site)
    built: list[Any] = []
    saved = {s.name for s in ctx.suites.all()}
    for entry in suites:
        run_id = RunIdentifier(run_name=run_name, run_time=entry.window.now)
        suite, validation = _validation_result(entry, run_id)
        if full or entry.name not in saved:  # a validation page alone does not read its suite
            if entry.name in saved:
                ctx.suites.delete(entry.name)
            ctx.suites.add(suite)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=entry.name),
            run_id=run_id,
            batch_identifier=f"{entry.table}-{entry.window.start:%Y%m%d}",
        )
        ctx.validation_results_store.set(key, validation)
        built.append(key)
        if full:
            built.append(ExpectationSuiteIdentifier(name=entry.name))
    if full and suites:
        prune(ctx, min(s.window.now for s in suites) - timedelta(days=keep_days))
    # Only this build's pages: a long backfill does not re-render every page of the site each day.
    if full:
        ctx.build_data_docs(resource_identifiers=built, build_index=True)
    else:
        with _listing_only(ctx.validation_results_store, built):
            ctx.build_data_docs(resource_identifiers=built, build_index=False)
    # ... and only the pages it wrote are made offline (the older ones were, when they were built).
    written = [page for page, mtime in _page_times(site).items() if before.get(page) != mtime]
    remote = make_offline(site, written)
    if remote:
        get_logger(job="quality").warning("data docs still load from the network", resources=remote[:10])
    return site / "index.html"


@contextmanager
def _listing_only(store: Any, keys: list[Any]) -> Iterator[None]:
    """While a build of given pages runs, the store lists those keys only. GX's site section builder
    lists every stored result for each build and compares each with the identifiers asked for: a
    day's pages took 0.21 s beside 100 stored results and 0.76 s beside 1,500 (0.26 s listing only
    its own), so a backfill's days grew slower day by day, and again on each repeat of the same
    days. Only for builds without the index, which must list them all."""
    store.list_keys = lambda *_args, **_kwargs: list(keys)
    try:
        yield
    finally:
        del store.list_keys


def prune(ctx: Any, before: datetime) -> int:
    """Drop the validation results that ran before ``before`` (the index build removes their pages)."""
    store = ctx.validation_results_store
    dropped = 0
    for key in store.list_keys():
        ran = key.run_id.run_time
        if ran is not None and (ran if ran.tzinfo else ran.replace(tzinfo=UTC)) < before:
            store.remove_key(key)
            dropped += 1
    return dropped


def _page_times(site: Path) -> dict[Path, int]:
    return {page: page.stat().st_mtime_ns for page in site.rglob("*.html")} if site.is_dir() else {}


def _validation_result(entry: DocsSuite, run_id: Any) -> tuple[Any, Any]:
    """GX's suite and suite validation result of one recorded suite (its verdict as ``success``)."""
    from great_expectations.core.expectation_validation_result import (  # noqa: PLC0415
        ExpectationSuiteValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415
        ExpectationConfiguration,
    )

    configs = [
        ExpectationConfiguration(
            type=r.type,
            kwargs=r.kwargs,
            meta={"pgtender_key": r.key, "pgtender_severity": r.severity},
            severity=gx_severity(r.severity),
        )
        for r in entry.results
    ]
    results = [_expectation_result(r, config) for r, config in zip(entry.results, configs, strict=True)]
    evaluated = [r for r in entry.results if r.status != "skipped"]
    passed = sum(1 for r in evaluated if r.status == "passed")
    validation = ExpectationSuiteValidationResult(
        success=entry.success(),
        results=results,
        suite_name=entry.name,
        statistics={
            "evaluated_expectations": len(evaluated),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(evaluated) - passed,
            "success_percent": (100.0 * passed / len(evaluated)) if evaluated else None,
        },
        meta={
            "great_expectations_version": _gx_version(),
            "run_id": run_id,
            "batch_spec": {"data_asset_name": entry.table, "table": entry.table},
            "batch_markers": {},
            "validation_time": entry.window.now.isoformat(),
            "pgtender": {
                "table": entry.table,
                "window": [entry.window.start.isoformat(), entry.window.end.isoformat()],
                "status": entry.status,
                **entry.verdict,
            },
        },
    )
    return gx_suite(entry.name, configs), validation


def _expectation_result(r: DocsResult, config: Any) -> Any:
    from great_expectations.core.expectation_validation_result import (  # noqa: PLC0415
        ExpectationValidationResult,
    )

    errored = r.status == "error"
    result = dict(r.result)
    if r.sample and "unexpected_count" in result:
        result["partial_unexpected_list"] = r.sample[:SAMPLE_SHOWN]
    elif r.sample:
        result["details"] = {"unexpected_rows_sample": r.sample[:SAMPLE_SHOWN]}
    return ExpectationValidationResult(
        # skipped = no rows in the window, where GX's own answer is a vacuous success
        success=r.status in ("passed", "skipped"),
        expectation_config=config,
        result=result,
        exception_info={
            "raised_exception": errored,
            "exception_message": r.error if errored else None,
            "exception_traceback": None,
        },
    )


def _gx_version() -> str:
    import great_expectations as gx  # noqa: PLC0415

    return str(gx.__version__)
