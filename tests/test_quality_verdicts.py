"""Verdicts that catch the incidents that matter, and agree with GX's Data Docs.

A day at a tenth of its volume fails its suite (exit 1, one page) although its weighted score stays
above the threshold; for every suite of every run (the daily job and a backfill) the suite row in
data_quality_checks, the exit code, the ledger, the pages and GX's validation results / rendered
Data Docs say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.core import clock
from flows.core.engine.outcomes import NOT_PASSED
from flows.quality import gx
from flows.quality.options import VOLUME_KEY
from tests.conftest import Database
from tests.test_alerts import Receiver, receiver  # noqa: F401 - the HTTP receiver fixture
from tests.test_cli import run_cli

# The validation page's header ("Status: <icon> Failed") and the index's row data.
PAGE_STATUS = re.compile(
    r'<span class="h6" >Status:</span>\s*<i class="fas [^"]*"[^>]*></i>\s*(Succeeded|Failed)'
)
INDEX_ROW = re.compile(r"'_table_row_link_path': '([^']+)', '_validation_success_text': '(\w+)'")
GX_SEVERITY = {"error": "critical", "warn": "warning"}


@pytest.fixture
def oncall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Path:  # noqa: F811
    """A webhook channel to the real receiver, and a state directory of the test's own (no Data Docs)."""
    policy = tmp_path / "pgtender.toml"
    policy.write_text(
        '[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "ONCALL_HOOK"\n', encoding="utf-8"
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    monkeypatch.setenv("ONCALL_HOOK", receiver.url)
    state = tmp_path / "state"
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(state))
    return state


def _yesterday(database: Database) -> date:
    with database.connect() as conn:
        return clock.db_now(conn).date() - timedelta(days=1)


def _suite_rows(database: Database, day: date) -> dict[str, tuple[str, float | None, dict[str, Any]]]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT suite, status, score, details FROM data_quality_checks"
            " WHERE is_current AND check_name = 'quality.' || suite AND window_start = %s::date::timestamptz",
            (day.isoformat(),),
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _expectation_rows(database: Database, day: date, suite: str) -> dict[str, tuple[str, str]]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT check_name, status, details ->> 'severity' FROM data_quality_checks"
            " WHERE is_current AND suite = %s AND check_name <> 'quality.' || suite"
            "   AND window_start = %s::date::timestamptz",
            (suite, day.isoformat()),
        ).fetchall()
    return {r[0].rsplit(".", 1)[-1]: (r[1], r[2]) for r in rows}


# ---------------------------------------------------------------- reading the Data Docs


@dataclass
class DocsVerdict:
    """One suite of one run as GX shows it: its page, its index row, its validation result."""

    suite: str
    day: date
    run_name: str
    page: str  # Succeeded | Failed
    index: str
    validation: Any  # GX's ExpectationSuiteValidationResult


def _pages(state: Path) -> set[Path]:
    return set((gx.docs_dir(state) / "validations").rglob("*.html"))


def _docs_verdicts(state: Path, pages: set[Path]) -> list[DocsVerdict]:
    """The verdicts of the given validation pages: the page, the index and GX's stored result."""
    site = gx.docs_dir(state)
    index = dict(INDEX_ROW.findall((site / "index.html").read_text("utf-8")))
    store = gx.context(state).validation_results_store
    keys = store.list_keys()
    out = []
    for page in sorted(pages):
        rel = page.relative_to(site).as_posix()  # validations/<suite>/<run>/<time>/<table>-<YYYYMMDD>.html
        _, suite, run_name, _, batch = rel.split("/")
        batch = batch.removesuffix(".html")
        found = PAGE_STATUS.search(page.read_text("utf-8"))
        assert found is not None, rel
        (key,) = [
            k
            for k in keys
            if k.run_id.run_name == run_name
            and k.expectation_suite_identifier.name == suite
            and k.batch_identifier == batch
        ]
        day = date(int(batch[-8:-4]), int(batch[-4:-2]), int(batch[-2:]))
        out.append(DocsVerdict(suite, day, run_name, found.group(1), index[rel], store.get(key)))
    return out


def _assert_agree(database: Database, verdict: DocsVerdict) -> str:
    """GX's view of one suite of one run is pgtender's; returns pgtender's status."""
    from great_expectations.expectations.metadata_types import FailureSeverity

    status, score, details = _suite_rows(database, verdict.day)[verdict.suite]
    failing = status in NOT_PASSED
    where = (verdict.suite, verdict.day, status, details.get("verdict"))
    # the page says Succeeded/Failed, the index Success/Failed
    assert (verdict.page, verdict.index) == (("Failed", "Failed") if failing else ("Succeeded", "Success")), (
        where
    )
    validation = verdict.validation
    assert validation.success is (not failing), where
    assert validation.meta["pgtender"]["status"] == status and validation.meta["pgtender"]["score"] == score
    # GX's own severity rule: its worst failure is critical exactly when an error expectation failed
    critical = validation.get_max_severity_failure() == FailureSeverity.CRITICAL
    assert critical == bool(details["blocking"]), where
    if failing and not critical:
        assert details["verdict"].startswith("score") or details["verdict"] == "no rows in the window", where
    expectations = _expectation_rows(database, verdict.day, verdict.suite)
    assert len(validation.results) == len(expectations), where
    for result in validation.results:
        row_status, severity = expectations[result.expectation_config.meta["pgtender_key"]]
        assert result.success is (row_status in ("passed", "skipped")), (where, result.expectation_config)
        assert result.expectation_config.severity.value == GX_SEVERITY[severity], where
    return status


# ---------------------------------------------------------------- the incident of issue 24


def _keep_a_tenth(database: Database, day: date) -> int:
    """Delete 90 % of the day's ordinary events (every tenth kept, the latest among them) and its
    anomalies: only the volume is wrong. Returns the rows left."""
    with database.connect() as conn:
        bounds = {"s": day.isoformat(), "e": (day + timedelta(days=1)).isoformat()}
        conn.execute(
            "DELETE FROM learning_events"
            " WHERE occurred_at >= %(s)s::date::timestamptz AND occurred_at < %(e)s::date::timestamptz"
            "   AND (payload ->> 'anomaly' IS NOT NULL OR id NOT IN ("
            "        SELECT id FROM (SELECT id, row_number() OVER (ORDER BY occurred_at DESC, id) AS n"
            "                          FROM learning_events"
            "                         WHERE occurred_at >= %(s)s::date::timestamptz"
            "                           AND occurred_at < %(e)s::date::timestamptz"
            "                           AND payload ->> 'anomaly' IS NULL) k"
            "         WHERE n %% 10 = 1))",
            bounds,
        )
        row = conn.execute(
            "SELECT count(*) FROM learning_events"
            " WHERE occurred_at >= %(s)s::date::timestamptz AND occurred_at < %(e)s::date::timestamptz",
            bounds,
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.calendar
def test_a_tenth_of_the_volume_fails_the_suite_and_pages_once(
    demo_db: Database,
    oncall: Path,
    receiver: Receiver,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    day = _yesterday(demo_db)
    left = _keep_a_tenth(demo_db, day)
    args = ["run", "quality", "--day", day.isoformat(), "--suite", "learning_events"]
    code, _, err = run_cli(args, capsys)
    assert code == 1, err

    status, score, details = _suite_rows(demo_db, day)["learning_events"]
    # the weighted score is the 92.3 (12 of 13 weights), above the threshold of 90 ...
    assert score == pytest.approx(100 * 12 / 13, abs=1e-3)
    # ... and the volume band, an error-severity expectation, fails the suite anyway
    assert status == "failed" and details["blocking"] == [VOLUME_KEY]
    assert _expectation_rows(demo_db, day, "learning_events")[VOLUME_KEY] == ("failed", "error")
    with demo_db.connect() as conn:
        observed = conn.execute(
            "SELECT observed_value FROM data_quality_checks WHERE is_current"
            " AND check_name = 'quality.learning_events.row_count_in_band'"
            " AND window_start = %s::date::timestamptz",
            (day.isoformat(),),
        ).fetchone()
        ledger = conn.execute("SELECT status FROM pgtender_operations WHERE job = 'quality'").fetchall()
    assert observed is not None and observed[0] == left
    assert ledger == [("problems",)]
    assert "learning_events failed: error-severity row_count_in_band failed (score 92.3)" in err

    pages = receiver.events("page")
    assert len(pages) == 1 and pages[0]["check"] == "quality.learning_events"
    assert VOLUME_KEY in pages[0]["summary"] and "error-severity" in pages[0]["summary"]

    (verdict,) = _docs_verdicts(oncall, _pages(oncall))
    assert _assert_agree(demo_db, verdict) == "failed" and verdict.page == "Failed"

    # the same day again (still failing): exit 1 again, no second page
    before = _pages(oncall)
    code, _, _ = run_cli(args, capsys)
    assert code == 1 and len(receiver.events("page")) == 1
    (again,) = _docs_verdicts(oncall, _pages(oncall) - before)
    assert _assert_agree(demo_db, again) == "failed"


# ---------------------------------------------------------------- every suite of every run


def _plant(database: Database, day: date) -> None:
    """On the day: a metric sample written twice (an error, the score stays at 90), LLM calls that
    succeeded without answer or latency (warnings worth 30 % of the score), one prediction of an
    unknown target type (a warning, score 90), and no evolution individuals (skipped)."""
    bounds = {"s": day.isoformat(), "e": (day + timedelta(days=1)).isoformat()}
    window = "%(s)s::date::timestamptz AND {c} < %(e)s::date::timestamptz"
    with database.connect() as conn:
        conn.execute(
            "INSERT INTO system_performance_metrics (recorded_at, metric_name, component, host, value, unit)"
            " SELECT recorded_at, metric_name, component, host, value, unit FROM system_performance_metrics"
            "  WHERE recorded_at >= " + window.format(c="recorded_at") + " AND component IS NOT NULL"
            "    AND host IS NOT NULL ORDER BY recorded_at LIMIT 1",
            bounds,
        )
        conn.execute(
            "INSERT INTO llm_interactions (model_name, provider, status, response_text, latency_ms, created_at)"
            " SELECT 'gpt', 'openai', 'success', NULL, NULL, %(s)s::date::timestamptz + interval '1 hour' * n"
            "   FROM generate_series(1, 5) AS n",
            bounds,
        )
        conn.execute(
            "INSERT INTO predictions (model_id, prediction_type, target_entity_type, target_entity_id,"
            "                         predicted_value, confidence, predicted_at)"
            " SELECT model_id, prediction_type, 'spaceship', target_entity_id, predicted_value, confidence,"
            "        predicted_at FROM predictions"
            "  WHERE predicted_at >= " + window.format(c="predicted_at") + " ORDER BY predicted_at LIMIT 1",
            bounds,
        )
        conn.execute(
            "DELETE FROM evolution_individuals WHERE created_at >= " + window.format(c="created_at"), bounds
        )


@pytest.mark.calendar
def test_every_verdict_of_every_run_matches_the_data_docs(
    demo_db: Database,
    oncall: Path,
    receiver: Receiver,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    day = _yesterday(demo_db)
    _plant(demo_db, day)

    # the daily job over yesterday, every suite
    code, _, err = run_cli(["run", "quality", "--day", day.isoformat()], capsys)
    daily = _docs_verdicts(oncall, _pages(oncall))
    rows = _suite_rows(demo_db, day)
    assert sorted(v.suite for v in daily) == sorted(rows) and len(rows) == 8
    statuses = {v.suite: _assert_agree(demo_db, v) for v in daily}
    assert statuses["system_performance_metrics"] == "failed"  # an error whatever the score (90.0)
    assert rows["system_performance_metrics"][1] == pytest.approx(90.0)
    assert rows["llm_interactions"][0] == "failed" and rows["llm_interactions"][2]["blocking"] == []
    assert statuses["predictions"] == "warning" and statuses["evolution_individuals"] == "skipped"
    failing = {s for s, st in statuses.items() if st in NOT_PASSED}
    # the exit code, the ledger and the pages say the same as the rows and the Data Docs
    assert code == 1 and all(f"{s} failed" in err for s in failing), err
    with demo_db.connect() as conn:
        ledger = conn.execute("SELECT status FROM pgtender_operations WHERE job = 'quality'").fetchall()
    assert ledger == [("problems",)]
    assert {p["check"] for p in receiver.events("page")} == {f"quality.{s}" for s in failing}
    assert len(receiver.events("page")) == len(failing)

    # a backfill of the two days before builds their Data Docs (none existed) and they agree too
    days = [day - timedelta(days=2), day - timedelta(days=1)]
    before = _pages(oncall)
    assert not any(v.day in days for v in daily)
    args = ["backfill", "--start", days[0].isoformat(), "--end", days[1].isoformat(), "--jobs", "quality"]
    code, _, err = run_cli(args, capsys)
    backfilled = _docs_verdicts(oncall, _pages(oncall) - before)
    assert sorted((v.day, v.suite) for v in backfilled) == sorted(
        (d, s) for d in days for s in _suite_rows(demo_db, d)
    )
    assert len(backfilled) == 16 and len({v.run_name for v in backfilled}) == 2
    problems = {v.day for v in backfilled if _assert_agree(demo_db, v) in NOT_PASSED}
    assert code == (1 if problems else 0), err
    with demo_db.connect() as conn:
        items = conn.execute(
            "SELECT (params ->> 'day')::date, counts ->> 'outcome' FROM pgtender_operations"
            " WHERE job = 'backfill' AND params ? 'item'"
        ).fetchall()
    assert {d: outcome for d, outcome in items} == {d: "problems" if d in problems else "done" for d in days}
    assert len(receiver.events("page")) == len(failing)  # a backfill never pages about the past
    # what the site is built from is on disk now: never the database's address
    kept = "".join(
        p.read_text("utf-8", errors="replace") for p in (oncall / "quality").rglob("*") if p.is_file()
    )
    assert "gx" in {p.name for p in (oncall / "quality").iterdir()}
    assert "127.0.0.1:5432" not in kept and demo_db.name not in kept and "postgresql" not in kept
