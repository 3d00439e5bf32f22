from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from checks import Suite, all_suites, between, not_null
from flows.core import clock, db, locks, markdown
from flows.core.engine import Kind
from flows.core.errors import ConfigError
from flows.core.policy import settings
from flows.quality import compiler, evaluate, gx_validation, options, recording, verdicts
from flows.quality.compiler import build_scan
from tests import quality_fixtures as fx
from tests.calendar import session_today
from tests.conftest import Database, flow_run, verdict_of

# Two days before the session's day (tests/calendar.py): inside the partitions the template was
# migrated with, fully in the past, and its history (up to 14 days back) too.
DAY = session_today() - timedelta(days=2)


def _window(day: date = DAY) -> compiler.Window:
    return options.day_window(day, clock.now())


def _policy(**kw: Any) -> settings.QualityPolicy:
    return settings.QualityPolicy(**kw)


def _by_key(run: evaluate.SuiteRun) -> dict[str, verdicts.Outcome]:
    return {o.key: o for o in run.outcomes}


def _current(conn: psycopg.Connection[Any], suite: str, day: date = DAY) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT check_name, status, observed_value, unexpected_count, unexpected_percent, sample, score,"
        "       expected, details"
        "  FROM data_quality_checks WHERE is_current AND suite = %s AND window_start = %s",
        (suite, fx.day_start(day)),
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


# ---------------------------------------------------------------- input


def test_parse_day_and_suite_selection() -> None:
    assert options.parse_day("2026-11-20", today=date(2026, 11, 21)) == date(2026, 11, 20)
    assert options.parse_day(None, today=date(2026, 3, 1)) == date(2026, 2, 28)
    assert options.parse_day(None, today=date(2028, 3, 1)) == date(2028, 2, 29)
    assert options.parse_day(None, today=date(2027, 1, 1)) == date(2026, 12, 31)
    for bad in ("2026-13-01", "2026-02-30", "yesterday", "20261120", "2026-11-20; DROP TABLE x"):
        with pytest.raises(ConfigError, match="day"):
            options.parse_day(bad, today=date(2026, 11, 21))
    with pytest.raises(ConfigError, match="in the future"):
        options.parse_day("2026-11-21", today=date(2026, 11, 20))
    assert options.parse_day("2026-11-20", today=date(2026, 11, 20)) == date(2026, 11, 20)
    with pytest.raises(ConfigError, match="unknown quality suite 'nope'"):
        options.select_suites("nope", _policy())
    with pytest.raises(ConfigError, match=r"quality\.suites\.typo"):
        options.select_suites(None, _policy(suites={"typo": settings.QualitySuitePolicy()}))
    names = [s.name for s in options.select_suites(None, _policy())]
    for family in (
        "learning_events",
        "system_performance_metrics",
        "ml_models",
        "model_evaluations",
        "predictions",
        "evolution_individuals",
        "llm_interactions",
        "pattern_occurrences",
    ):
        assert family in names
    off = _policy(suites={"ml_models": settings.QualitySuitePolicy(enabled=False)})
    assert "ml_models" not in [s.name for s in options.select_suites(None, off)]
    assert [s.name for s in options.select_suites("ml_models", off)] == ["ml_models"]


def test_sqlalchemy_url_for_tcp_and_socket_dsns() -> None:
    from flows.quality.gx import sqlalchemy_url

    tcp = sqlalchemy_url("postgresql://bob:s%40cret@db.example:6543/app?sslmode=require")
    assert tcp.drivername == "postgresql+psycopg"
    assert (tcp.username, tcp.password, tcp.host, tcp.port, tcp.database) == (
        "bob",
        "s@cret",
        "db.example",
        6543,
        "app",
    )
    assert tcp.query["sslmode"] == "require"
    sock = sqlalchemy_url("postgresql://postgres:@/postgres?host=/tmp/pg%20sock")
    assert sock.host is None and sock.database == "postgres" and sock.query["host"] == "/tmp/pg sock"
    kv = sqlalchemy_url("host=/run/pg dbname=x user=u port=5433")
    assert kv.query["host"] == "/run/pg" and kv.query["port"] == "5433" and kv.database == "x"
    with pytest.raises(ConfigError):
        sqlalchemy_url("postgresql://h:notaport/x?bogus_option=1")


def test_no_gx_import_at_module_import() -> None:
    import subprocess
    import sys

    code = "import sys, flows.quality, checks; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- planted defects


def test_learning_events_planted_defects_exact_counts(migrated_db: Database) -> None:
    suite = all_suites()["learning_events"]
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.history(conn, DAY)
        fx.clean_events(conn, DAY)
        fx.defective_events(conn, DAY)
        run = evaluate.evaluate_suite(conn, suite, _window(), _policy())
    assert run.row_count == fx.LE_BAD_TOTAL
    out = _by_key(run)
    expected_failures = {
        "session_id_not_null": 3,
        "event_type_in_set": 4,
        "id_unique": 4,
        "ingested_at_not_in_future": 6,
    }
    for key, count in expected_failures.items():
        assert out[key].status == "failed", key
        assert out[key].unexpected_count == count, key
        assert out[key].unexpected_percent == pytest.approx(count / fx.LE_BAD_TOTAL * 100), key
        assert out[key].sample, key
    assert out["model_id_references_ml_models"].status == "failed"
    assert out["model_id_references_ml_models"].observed_value == 5
    assert len(out["model_id_references_ml_models"].sample or []) == 5
    assert {s["value"] for s in out["event_type_in_set"].sample or []} == {"bogus_evt"}
    assert len(out["id_unique"].sample or []) == 2 and all(
        s["count"] == 2 for s in out["id_unique"].sample or []
    )
    for key in ("occurred_at_not_in_future", "source_in_set", "user_id_not_null", "occurred_at_fresh"):
        assert out[key].status == "passed", key
        assert out[key].sample is None
    volume = out[evaluate.VOLUME_KEY]
    assert volume.status == "passed" and volume.observed_value == fx.LE_BAD_TOTAL
    assert volume.kwargs == {"min_value": 500, "max_value": 2000}
    # weights: 13 in all, failing: event_type 2 + session 1 + ingested 1 + unique 2 + references 1
    assert run.score == pytest.approx(100 * 6 / 13, abs=1e-3)
    assert run.status == "failed"
    assert run.details["partition"] == f"learning_events_p{DAY.replace(day=1):%Y%m%d}"


def test_tenth_of_normal_volume_fails_the_band(migrated_db: Database) -> None:
    suite = all_suites()["learning_events"]
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.history(conn, DAY)
        fx.clean_events(conn, DAY, rows=fx.CLEAN_ROWS // 10)
        run = evaluate.evaluate_suite(conn, suite, _window(), _policy())
    out = _by_key(run)
    assert out[evaluate.VOLUME_KEY].status == "failed"
    assert out[evaluate.VOLUME_KEY].observed_value == 100
    assert out[evaluate.VOLUME_KEY].kwargs["min_value"] == 500
    assert [o.key for o in run.outcomes if o.status != "passed"] == [evaluate.VOLUME_KEY]
    assert run.score == pytest.approx(100 * 12 / 13, abs=1e-3)  # the trend: 92.3, above 90
    # ... but the volume band is an error-severity expectation: the day fails whatever the score
    assert out[evaluate.VOLUME_KEY].severity == "error"
    assert run.status == "failed" and run.details["blocking"] == [evaluate.VOLUME_KEY]
    assert run.details["verdict"] == f"error-severity {evaluate.VOLUME_KEY} failed"
    # the policy may make it a warning: then only the score counts (92.3 >= 90: warning, not failed)
    lenient = _policy(
        suites={"learning_events": settings.QualitySuitePolicy(severity={evaluate.VOLUME_KEY: "warn"})}
    )
    weighted = _policy(
        suites={
            "learning_events": settings.QualitySuitePolicy(
                severity={evaluate.VOLUME_KEY: "warn"}, weights={evaluate.VOLUME_KEY: 5}
            )
        }
    )
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        warned = evaluate.evaluate_suite(conn, suite, _window(), lenient)
        rerun = evaluate.evaluate_suite(conn, suite, _window(), weighted)
    assert warned.status == "warning" and warned.score == run.score
    assert warned.details["blocking"] == [] and warned.details["warnings"] == [evaluate.VOLUME_KEY]
    assert rerun.score == pytest.approx(100 * 12 / 17, abs=1e-3) and rerun.status == "failed"
    assert rerun.details["verdict"] == "score 70.6 < 90"


def test_volume_band_learned_from_recorded_history(migrated_db: Database) -> None:
    """Once earlier days are recorded, the band comes from their results, not from recounting."""
    suite = all_suites()["learning_events"]
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        for back, rows in ((3, 400), (2, 600), (1, 800)):
            fx.clean_events(conn, DAY - timedelta(days=back), rows=rows)
            recording.run_suites(conn, [suite], _window(DAY - timedelta(days=back)), _policy())
        # Remove the rows behind those results: only the recorded history can explain the band.
        conn.execute("DELETE FROM learning_events")
        fx.clean_events(conn, DAY, rows=1000)
        low, high, details = evaluate.volume_band(conn, suite, _window(), _policy())
    assert details["days_with_rows"] == 3 and details["median"] == 600
    assert (low, high) == (300, 1200)


def test_clean_day_passes_every_expectation(migrated_db: Database) -> None:
    suite = all_suites()["learning_events"]
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.history(conn, DAY)
        fx.clean_events(conn, DAY)
        run = evaluate.evaluate_suite(conn, suite, _window(), _policy())
    assert run.row_count == fx.CLEAN_ROWS
    assert [o.key for o in run.outcomes if o.status != "passed"] == []
    assert run.score == 100.0 and run.status == "passed"


@pytest.mark.calendar
def test_the_databases_yesterday_is_checked_in_its_own_partition(migrated_db: Database) -> None:
    """No --day: the database's yesterday (on 1 January, 31 December, in last year's partition),
    validated in the partition migration 0005 made for its month."""
    suite = all_suites()["learning_events"]
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        now = clock.db_now(conn)
        day = options.parse_day(None, today=now.date())
        fx.history(conn, day)
        fx.clean_events(conn, day)
        run = evaluate.evaluate_suite(conn, suite, options.day_window(day, now), _policy())
    assert day == now.date() - timedelta(days=1)
    assert run.row_count == fx.CLEAN_ROWS and run.status == "passed" and run.score == 100.0
    assert run.details["partition"] == f"learning_events_p{day.replace(day=1):%Y%m%d}"


def test_other_families_planted_defects(migrated_db: Database) -> None:
    suites = all_suites()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.predictions(conn, DAY)
        fx.pattern_occurrences(conn, DAY)
        preds = _by_key(evaluate.evaluate_suite(conn, suites["predictions"], _window(), _policy()))
        pats = _by_key(evaluate.evaluate_suite(conn, suites["pattern_occurrences"], _window(), _policy()))
    assert preds["confidence_not_null"].unexpected_count == 2
    assert preds["target_entity_type_in_set"].unexpected_count == 3
    assert {s["value"] for s in preds["target_entity_type_in_set"].sample or []} == {"spaceship"}
    assert preds["resolved_have_actual"].observed_value == 1
    assert preds["confidence_between"].status == "passed"
    assert pats["detected_once"].status == "failed" and pats["detected_once"].unexpected_count == 4
    assert sorted(s["source_id"] for s in pats["detected_once"].sample or []) == ["f1", "f47"]
    assert pats["confidence_between"].status == "passed"


def test_fused_scan_agrees_with_gx(migrated_db: Database, state_dir: Path) -> None:
    """The fused scan's success, counts and observed values are GX's own, expectation by expectation."""
    from great_expectations.expectations.metadata_types import FailureSeverity

    from flows.quality import gx as gx_runtime

    suites = all_suites()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.history(conn, DAY, days=1)
        fx.clean_events(conn, DAY, rows=300)
        fx.defective_events(conn, DAY)
        fx.predictions(conn, DAY)
        fx.pattern_occurrences(conn, DAY)
        window = _window()
        for name in ("learning_events", "predictions", "pattern_occurrences"):
            suite = suites[name]
            run = evaluate.evaluate_suite(conn, suite, window, _policy())
            configs = [
                gx_runtime.expectation_configuration(o.exp, o.kwargs, severity=o.severity)
                for o in run.outcomes
            ]
            validation = gx_runtime.validate_with_gx(state_dir, migrated_db.dsn, suite, window, configs)
            gx = {r.expectation_config.meta["pgtender_key"]: r for r in validation.results}
            assert len(gx) == len(run.outcomes)
            # the suite's verdict is GX's severity rule: an error expectation failed <=> GX's worst
            # failure is critical (plus the score threshold, which GX does not have)
            critical = validation.get_max_severity_failure() == FailureSeverity.CRITICAL
            assert critical == bool(run.details["blocking"]), (name, run.details)
            assert (run.status in ("failed", "error")) == (critical or run.score < run.threshold), name
            for outcome in run.outcomes:
                res = gx[outcome.key]
                assert not res.exception_info.get("raised_exception"), (name, outcome.key, res.exception_info)
                assert res.success == outcome.success, (name, outcome.key, res.result, outcome.result)
                for field in ("unexpected_count", "element_count", "unexpected_percent", "missing_count"):
                    if field in res.result:
                        assert outcome.result.get(field) == pytest.approx(res.result[field]), (
                            name,
                            outcome.key,
                            field,
                        )
                if "observed_value" in res.result and outcome.type != "expect_column_max_to_be_between":
                    assert outcome.observed_value == res.result["observed_value"], (name, outcome.key)


# ---------------------------------------------------------------- empty windows, errors, GX path


def test_day_without_partition_or_rows(migrated_db: Database) -> None:
    old = date(2001, 1, 1)  # no partition: only the (empty) DEFAULT partition could hold it
    suites = all_suites()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        le = evaluate.evaluate_suite(conn, suites["learning_events"], _window(old), _policy())
        po = evaluate.evaluate_suite(conn, suites["pattern_occurrences"], _window(old), _policy())
    assert le.row_count == 0 and le.status == "failed" and le.score == 0.0
    assert le.details["partition"] == "learning_events_default" and "no partition" in le.details["note"]
    out = _by_key(le)
    assert out[evaluate.VOLUME_KEY].status == "failed" and out[evaluate.VOLUME_KEY].observed_value == 0
    assert {o.status for k, o in out.items() if k != evaluate.VOLUME_KEY} == {"skipped"}
    assert po.status == "skipped" and po.score is None
    assert {o.status for o in po.outcomes} == {"skipped"}


def test_broken_expectation_is_an_error_row_not_a_pass(migrated_db: Database) -> None:
    suite = Suite(
        name="learning_events",
        table="learning_events",
        time_column="occurred_at",
        expectations=(not_null("session_id"), not_null("no_such_column"), between("user_id", min_value=0)),
    )
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.clean_events(conn, DAY, rows=10)
        run = evaluate.evaluate_suite(conn, suite, _window(), _policy())
        recording.record(conn, run, flow_run_id=None)
        rows = _current(conn, "learning_events")
    out = _by_key(run)
    assert out["session_id_not_null"].status == "passed"
    assert out["no_such_column_not_null"].status == "error"
    assert "no_such_column" in out["no_such_column_not_null"].details["error"]
    assert out["user_id_between"].status == "error"  # text >= integer: a SQL error, not a pass
    assert run.status == "failed" and run.score == pytest.approx(100 / 3, abs=1e-3)
    assert rows["quality.learning_events.no_such_column_not_null"][0] == "error"


def test_unsupported_type_runs_through_gx(migrated_db: Database, state_dir: Path) -> None:
    from checks import Expectation

    suite = Suite(
        name="learning_events",
        table="learning_events",
        time_column="occurred_at",
        expectations=(
            Expectation(
                "user_id_pattern",
                "expect_column_values_to_match_regex",
                {"column": "user_id", "regex": "^user_"},
            ),
            Expectation(
                "bad_gx", "expect_column_values_to_match_regex", {"column": "missing_col", "regex": "x"}
            ),
        ),
    )
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.clean_events(conn, DAY, rows=20)
        fx.defective_events(conn, DAY)  # adds rows with user_id 'u'

        def runner(s: Suite, w: compiler.Window, facts: list[Any]) -> list[verdicts.Outcome]:
            return gx_validation.gx_outcomes(state_dir, migrated_db.dsn, s, w, facts, sample_size=3)

        run = evaluate.evaluate_suite(conn, suite, _window(), _policy(), gx_runner=runner)
    out = _by_key(run)
    pattern = out["user_id_pattern"]
    assert pattern.engine == "gx" and pattern.status == "failed"
    assert pattern.unexpected_count == 3 + 4 + 5 + 6  # every planted row but the duplicated ids
    assert pattern.sample == ["u", "u", "u"]
    assert out["bad_gx"].status == "error"


def test_fused_scan_is_pruned_to_the_days_partition(migrated_db: Database) -> None:
    suite = all_suites()["learning_events"]
    window = _window()
    scan = build_scan(suite, list(suite.expectations), window)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + scan.query, scan.params).fetchone()
    assert plan is not None
    text = json.dumps(plan[0])

    def relations(node: Any) -> set[str]:
        if isinstance(node, dict):
            own = {node["Relation Name"]} if "Relation Name" in node else set()
            return own.union(*(relations(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(relations(v) for v in node))
        return set()

    scanned = {r for r in relations(plan[0]) if r.startswith("learning_events")}
    assert scanned == {f"learning_events_p{DAY.replace(day=1):%Y%m%d}"}
    assert "EXTRACT" not in text.upper()


# ---------------------------------------------------------------- recording


def test_rerun_keeps_one_current_row_per_check(migrated_db: Database) -> None:
    suite = all_suites()["learning_events"]
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.clean_events(conn, DAY)
        fx.defective_events(conn, DAY)
        first = recording.run_suites(conn, [suite], _window(), _policy())
        second = recording.run_suites(conn, [suite], _window(), _policy())
        rows = _current(conn, "learning_events")
        total = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_current) FROM data_quality_checks WHERE suite = 'learning_events'"
        ).fetchone()
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM data_quality_checks WHERE is_current"
            " GROUP BY check_name, target, window_start, window_end HAVING count(*) > 1) d"
        ).fetchone()[0]
    n = len(first[0].outcomes) + 1
    assert len(second[0].outcomes) + 1 == n == len(rows)
    assert total == (2 * n, n) and dupes == 0
    suite_row = rows["quality.learning_events"]
    assert suite_row[0] == "failed" and suite_row[5] == pytest.approx(first[0].score)
    status, observed, unexpected, pct, sample, _score, expected, details = rows[
        "quality.learning_events.event_type_in_set"
    ]
    assert (status, observed, unexpected) == ("failed", 4, 4)
    assert pct == pytest.approx(4 / fx.LE_BAD_TOTAL * 100)
    assert (
        expected["type"] == "expect_column_values_to_be_in_set" and "bogus_evt" not in expected["value_set"]
    )
    assert [s["value"] for s in sample] == ["bogus_evt"] * 4 and details["engine"] == "fused-scan"
    ref = rows["quality.learning_events.model_id_references_ml_models"]
    assert ref[6]["unexpected_rows_query"].startswith("SELECT * FROM {batch} WHERE")


# ---------------------------------------------------------------- the Prefect flow


@pytest.mark.usefixtures("prefect_api")
def test_flow_lock_is_per_day(migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of the same day skips; the job-wide lock a backfill of other days holds does not."""
    config = tmp_path / "policy.toml"
    config.write_text("[quality]\ndata_docs = false\n", encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.history(conn, DAY, days=1)
        fx.clean_events(conn, DAY)
    with db.connect(migrated_db.dsn, autocommit=True) as holder:
        with locks.job_lock(holder, locks.day_key("quality", DAY.isoformat())) as got:
            assert got
            skipped = flow_run("quality", day=DAY.isoformat(), suite="learning_events")
        assert skipped.is_completed() and verdict_of(skipped).kind is Kind.SKIPPED
        assert f"another quality for {DAY.isoformat()} run holds the advisory lock" in skipped.message
        with (
            locks.job_lock(holder, "quality") as got,
            locks.job_lock(
                holder, locks.day_key("quality", (DAY - timedelta(days=3)).isoformat())
            ) as other_day,
        ):
            assert got and other_day  # what a backfill item of another day holds
            ran_state = flow_run("quality", day=DAY.isoformat(), suite="learning_events")
    assert verdict_of(ran_state).kind is Kind.DONE
    ran = ran_state.result()
    assert ran["suites"][0]["status"] == "passed" and ran["suites"][0]["rows_written"] > 0
    with migrated_db.connect() as conn:
        ops = conn.execute(
            "SELECT status FROM pgtender_operations WHERE job = 'quality' ORDER BY started_at"
        ).fetchall()
    # the run the day lock skipped is recorded as skipped, never as completed
    assert ops == [("skipped",), ("completed",)]


@pytest.mark.usefixtures("prefect_api")
def test_flow_threshold_decides_state_and_docs(
    migrated_db: Database, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fx.history(conn, DAY, days=1)
        fx.clean_events(conn, DAY)
        fx.defective_events(conn, DAY)

    state = flow_run("quality", day=DAY.isoformat(), suite="learning_events")
    assert state.is_failed()
    verdict = verdict_of(state)
    assert (
        verdict.kind is Kind.PROBLEMS and verdict.exit_code == 1 and "learning_events failed" in verdict.line
    )

    config = tmp_path / "policy.toml"
    config.write_text("[quality]\nthreshold = 40\n", encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    state = flow_run("quality", day=DAY.isoformat(), suite="learning_events")
    assert state.is_failed()  # duplicated ids and orphaned model ids are errors whatever the score
    assert "error-severity id_unique failed, model_id_references_ml_models failed" in (state.message or "")
    # made warnings by the policy, only the score (above 40) decides: the suite passes with warnings
    config.write_text(
        "[quality]\nthreshold = 40\n[quality.suites.learning_events.severity]\n"
        'id_unique = "warn"\nmodel_id_references_ml_models = "warn"\n',
        encoding="utf-8",
    )
    state = flow_run("quality", day=DAY.isoformat(), suite="learning_events")
    assert state.is_completed(), state
    result = state.result()
    assert result["suites"][0]["status"] == "warning" and result["suites"][0]["score"] > 40
    index = Path(result["data_docs"])
    assert index.is_file() and index.parent == state_dir / "quality" / "data_docs"
    assert "learning_events" in index.read_text(encoding="utf-8")
    docs_text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in index.parent.rglob("*.html"))
    assert migrated_db.name in os.environ["PGTENDER_DATABASE_URL"] and "127.0.0.1:5432" not in docs_text

    with migrated_db.connect() as conn:
        ops = conn.execute(
            "SELECT status, counts FROM pgtender_operations WHERE job = 'quality' ORDER BY started_at"
        ).fetchall()
        current = conn.execute(
            "SELECT count(*), count(DISTINCT flow_run_id) FROM data_quality_checks"
            " WHERE is_current AND suite = 'learning_events'"
        ).fetchone()
    assert [o[0] for o in ops] == ["problems", "problems", "completed"]
    assert ops[2][1]["suites"] == 1 and ops[2][1]["rows_written"] == current[0] and current[1] == 1

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["quality-summary", "quality-data-docs"])
            )
        )
    kinds = {a.key: a for a in arts}
    assert "quality-summary" in kinds and markdown.text("learning_events") in str(
        kinds["quality-summary"].data
    )
    assert "quality-data-docs" in kinds and "index.html" in str(kinds["quality-data-docs"].data)


@pytest.mark.usefixtures("prefect_api")
def test_flow_days_are_the_databases(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --day: the database's yesterday (on 1 January, 31 December), and --day may be the database's
    today, also when pgtender's own clock is a day off (another machine, a drifting clock)."""
    config = tmp_path / "policy.toml"
    config.write_text("[quality]\ndata_docs = false\n", encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))

    def db_today() -> date:
        with migrated_db.connect() as conn:
            return clock.db_now(conn).date()

    before = db_today()
    with clock.travel(timedelta(days=1)):  # pgtender's clock a day ahead of the database's
        default = flow_run("quality", suite="ml_models").result()
    with clock.travel(timedelta(days=-1)):  # a day behind: the database's today is not the future
        today = flow_run("quality", day=before.isoformat(), suite="ml_models")
    after = db_today()  # a run may cross the database's midnight
    assert default["day"] in {(d - timedelta(days=1)).isoformat() for d in (before, after)}
    assert today.is_completed(), today
    with migrated_db.connect() as conn:
        days = [r[0] for r in conn.execute(
            "SELECT params ->> 'day' FROM pgtender_operations WHERE job = 'quality' ORDER BY started_at"
        )]  # fmt: skip
    assert days == [default["day"], before.isoformat()]


@pytest.mark.usefixtures("prefect_api")
def test_flow_bad_input_is_config_error_and_changes_nothing(migrated_db: Database) -> None:
    # not a calendar date: refused by the parameters' type (the field named), before any target is touched
    state = flow_run("quality", day="2026-02-30")
    verdict = verdict_of(state)
    assert state.is_failed() and verdict.kind is Kind.BAD_INPUT and "day" in verdict.line
    state = flow_run("quality", day=(clock.today() + timedelta(days=1)).isoformat())
    verdict = verdict_of(state)
    assert state.is_failed() and verdict.kind is Kind.BAD_INPUT
    assert "day" in verdict.line and "future" in verdict.line
    state = flow_run("quality", suite="no_such_suite")
    verdict = verdict_of(state)
    assert verdict.kind is Kind.BAD_INPUT and "unknown quality suite 'no_such_suite'" in verdict.line
    with migrated_db.connect() as conn:
        # the malformed day is refused by the form's type, before any target: no row; the future day
        # (the database's clock says what "the future" is) and the unknown suite are refused requests
        # kept as rejected (the report counts them); nothing else happened
        assert conn.execute("SELECT status FROM pgtender_operations WHERE job = 'quality'").fetchall() == [
            ("rejected",),
            ("rejected",),
        ]
        assert conn.execute("SELECT count(*) FROM data_quality_checks").fetchone()[0] == 0


def test_the_days_partition_is_found_from_catalog_bounds(migrated_db: Database) -> None:
    """Weekly partitions, and names that follow no convention (or were cut to 63 bytes): the
    partition is the one whose bounds hold the day, read from the catalog."""
    from datetime import date as date_

    from checks import Suite

    long_name = "w" * 63
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE weekly_events (id bigint, at timestamptz NOT NULL) PARTITION BY RANGE (at);"
            " CREATE TABLE weekly_events_default PARTITION OF weekly_events DEFAULT;"
            " CREATE TABLE this_week PARTITION OF weekly_events"
            "  FOR VALUES FROM ('2027-03-22 00:00+00') TO ('2027-03-29 00:00+00');"
            f' CREATE TABLE "{long_name}" PARTITION OF weekly_events'
            "  FOR VALUES FROM ('2027-03-29 00:00+00') TO ('2027-04-05 00:00+00')"
        )
        suite = Suite("weekly", "weekly_events", "at", ())
        assert evaluate.partition_info(conn, suite, date_(2027, 3, 28)) == {
            "partitioned": True,
            "partition": "this_week",
        }
        assert evaluate.partition_info(conn, suite, date_(2027, 4, 4))["partition"] == long_name
        uncovered = evaluate.partition_info(conn, suite, date_(2027, 5, 1))
        assert uncovered["partition"] == "weekly_events_default" and "no partition" in uncovered["note"]
        assert (
            evaluate.partition_info(conn, Suite("none", "no_such_table", "at", ()), date_(2027, 5, 1)) is None
        )
