"""Severity in the suites and the policy, and the Data Docs' lifetime (no database needed but for
the CLI's exit 2, which must change nothing)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from flows.quality import gx
from flows.quality.options import VOLUME_KEY
from tests.conftest import Database, human_lines
from tests.test_cli import run_cli
from tests.test_quality_verdicts import INDEX_ROW, _pages

# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[quality.suites.learning_events.severity]\nid_unique = "fatal"\n',
            "quality.suites.learning_events.severity.id_unique: Input should be 'error' or 'warn'",
        ),
        (
            '[quality.suites.learning_events.severity]\nid_uniq = "warn"\n',
            "quality.suites.learning_events.severity.id_uniq: unknown expectation; known: event_type_in_set,",
        ),
        (  # ml_models has no volume band
            '[quality.suites.ml_models.severity]\nrow_count_in_band = "warn"\n',
            "quality.suites.ml_models.severity.row_count_in_band: unknown expectation",
        ),
        ("[quality.suites.predictions]\nseverity = 'warn'\n", "quality.suites.predictions.severity"),
    ],
)
def test_a_bad_severity_is_one_line_and_exit_2(
    migrated_db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    toml: str,
    message: str,
) -> None:
    policy = tmp_path / "pgtender.toml"
    policy.write_text(toml, encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    code, out, err = run_cli(["run", "quality"], capsys)
    assert code == 2, (out, err)
    lines = human_lines(err)
    assert len(lines) == 1 and message in lines[0], err
    with migrated_db.connect() as conn:
        # nothing validated: a file the policy's schema refuses is refused before any database is
        # reached; a severity for an expectation the suite lacks, at the request's check, which
        # leaves the refusal on the ledger as rejected
        rows = conn.execute("SELECT job, status FROM pgtender_operations").fetchall()
    assert rows in ([], [("quality", "rejected")]), rows
    assert migrated_db.scalar("SELECT count(*) FROM data_quality_checks") == 0


def test_the_shipped_error_expectations() -> None:
    """Volume, freshness, key uniqueness and references, plus the deployed model's artifact."""
    from checks import all_suites

    errors = {
        name: sorted(
            [e.key for e in s.expectations if e.severity == "error"] + ([VOLUME_KEY] if s.volume else [])
        )
        for name, s in all_suites().items()
    }
    assert errors == {
        "learning_events": ["id_unique", "model_id_references_ml_models", "occurred_at_fresh", VOLUME_KEY],
        "system_performance_metrics": ["one_sample_per_series", "recorded_at_fresh", VOLUME_KEY],
        "ml_models": ["deployed_have_artifact"],
        "model_evaluations": ["no_duplicates"],
        "predictions": [VOLUME_KEY],
        "evolution_individuals": ["rank_unique_in_generation"],
        "llm_interactions": [],
        "pattern_occurrences": ["detected_once"],
    }


def test_the_policy_sets_a_severity_both_ways() -> None:
    from checks import all_suites
    from flows.core.policy import settings
    from flows.quality import options

    suites = all_suites()
    policy = settings.QualityPolicy(
        suites={
            "learning_events": settings.QualitySuitePolicy(severity={VOLUME_KEY: "warn"}),
            "llm_interactions": settings.QualitySuitePolicy(severity={"cost_usd_between": "error"}),
        }
    )
    le = {e.key: e for e in suites["learning_events"].expectations}
    llm = {e.key: e for e in suites["llm_interactions"].expectations}
    assert options.severity_for(le["id_unique"], suites["learning_events"], policy) == "error"
    assert options.severity_for(le["session_id_not_null"], suites["learning_events"], policy) == "warn"
    assert options.severity_for(llm["cost_usd_between"], suites["llm_interactions"], policy) == "error"
    assert options.expectation_keys(suites["learning_events"])[-1] == VOLUME_KEY
    assert [s.name for s in options.select_suites("learning_events", policy)] == ["learning_events"]


def test_data_docs_outlive_their_process_for_data_docs_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site built by one process keeps another's pages (the suites and validation results behind
    them are kept on disk); runs older than data_docs_days leave it, pages and all."""
    from datetime import UTC, datetime

    from flows.quality import gx_docs
    from flows.quality.compiler import Window

    state = tmp_path / "state"
    first = datetime(2026, 3, 1, tzinfo=UTC)

    def build(run: str, day: datetime, status: str) -> set[str]:
        monkeypatch.setattr(gx, "_contexts", {})  # each build as a new process would: a new context
        window = Window(start=day, end=day + timedelta(days=1), now=day + timedelta(days=1, hours=1))
        result = gx_docs.DocsResult(
            key="id_unique",
            type="expect_column_values_to_be_unique",
            kwargs={"column": "id"},
            status="failed" if status == "failed" else "passed",
            result={"element_count": 10, "unexpected_count": 2 if status == "failed" else 0},
            severity="error",
        )
        suite = gx_docs.DocsSuite("learning_events", "learning_events", window, [result], status=status)
        gx_docs.build_data_docs(state, run, [suite], keep_days=31)
        index = dict(INDEX_ROW.findall((gx.docs_dir(state) / "index.html").read_text("utf-8")))
        pages = {p.relative_to(gx.docs_dir(state)).as_posix() for p in _pages(state)}
        assert set(index) == pages
        return {f"{p.split('/')[2]}:{index[p]}" for p in pages}

    assert build("run-a", first, "failed") == {"run-a:Failed"}
    assert build("run-b", first + timedelta(days=1), "passed") == {"run-a:Failed", "run-b:Success"}
    # 40 days on: both earlier runs are older than 31 days and leave the site
    assert build("run-c", first + timedelta(days=40), "warning") == {"run-c:Success"}
    assert (gx.store_dir(state) / "validations").is_dir()


def test_a_backfill_day_writes_its_pages_without_listing_every_stored_result(tmp_path: Path) -> None:
    """GX's site builder lists the whole validation store for each build (its cost grew with every
    stored result: a backfill's days got slower day by day, and on each repeat); a day's build
    (``full=False``) lists only its own results, and the last, full build indexes them all."""
    from datetime import UTC, datetime

    from flows.quality import gx_docs
    from flows.quality.compiler import Window

    state = tmp_path / "state"
    first = datetime(2026, 3, 1, tzinfo=UTC)

    def suite(day: datetime) -> gx_docs.DocsSuite:
        window = Window(start=day, end=day + timedelta(days=1), now=day + timedelta(days=1, hours=1))
        result = gx_docs.DocsResult(
            key="id_unique",
            type="expect_column_values_to_be_unique",
            kwargs={"column": "id"},
            status="passed",
            result={"element_count": 10, "unexpected_count": 0},
            severity="error",
        )
        return gx_docs.DocsSuite("learning_events", "learning_events", window, [result], status="passed")

    gx_docs.build_data_docs(state, "daily", [suite(first)], keep_days=31)
    backend = gx.context(state).validation_results_store.store_backend
    real = backend.list_keys
    listed: list[int] = []

    def counting(*args: object, **kwargs: object) -> object:
        listed.append(1)
        return real(*args, **kwargs)

    backend.list_keys = counting
    try:
        before = {p: p.stat().st_mtime_ns for p in _pages(state)}
        for n in (1, 2, 3):
            gx_docs.build_data_docs(
                state, "backfill", [suite(first + timedelta(days=n))], keep_days=31, full=False
            )
        assert listed == []  # no day's build read the store's list
        pages = _pages(state)
        assert len(pages) == 4 and all(
            before[p] == p.stat().st_mtime_ns for p in before
        )  # older pages untouched
        assert len(gx.context(state).validation_results_store.list_keys()) == 4  # the store lists all again
        gx_docs.build_data_docs(state, "backfill", [suite(first + timedelta(days=4))], keep_days=31)
        assert listed  # the index build lists every result...
        index = dict(INDEX_ROW.findall((gx.docs_dir(state) / "index.html").read_text("utf-8")))
        assert {p.relative_to(gx.docs_dir(state)).as_posix() for p in _pages(state)} == set(index)
        assert len(index) == 5  # ... and shows every page
    finally:
        del backend.list_keys
