"""The first report tells the truth: lateness only from a job's first run here, coverage stated,
capacity from any measurement in the week (backfilled ones too), --dry-run prints its paths; the
demo data's capacity history matches the tables it describes."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from flows import report
from flows.core import clock, db
from flows.core.engine import Kind
from flows.core.policy import settings
from tests.conftest import Database, run_job
from tests.test_report import MONDAY, WEEK, _at, _check, report_env  # noqa: F401 - fixture

DAILY = ("5 0 * * *", "UTC")


def test_lateness_counts_only_from_the_jobs_first_run(migrated_db: Database) -> None:
    week = report.parse_week(WEEK, "UTC", now=_at(MONDAY + timedelta(days=8)))
    now = week.end + timedelta(days=1)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        # nothing ever ran here: nothing can be late
        empty = report.job_stats(conn, week, {"partitions": DAILY}, now=now)
        assert [(j.job, j.expected, j.late) for j in empty] == [("partitions", None, None)]
        # pgtender arrives on Thursday: partitions runs Thu..Sun; views never runs
        for i in (3, 4, 5, 6):
            started = _at(MONDAY + timedelta(days=i), 0, 6)
            conn.execute(
                "INSERT INTO pgtender_operations (job, status, started_at, finished_at)"
                " VALUES ('partitions', 'completed', %s, %s)",
                (started, started + timedelta(seconds=2)),
            )
        stats = {
            j.job: j for j in report.job_stats(conn, week, {"partitions": DAILY, "views": DAILY}, now=now)
        }
    # Mon..Wed were before pgtender existed: not late (was: 3 late of 7)
    assert (stats["partitions"].expected, stats["partitions"].late) == (4, 0)
    # a job that never ran counts from pgtender's first run of any job
    assert (stats["views"].expected, stats["views"].late) == (4, 4)
    assert stats["partitions"].counted_from == _at(MONDAY + timedelta(days=3), 0, 6)


@pytest.mark.usefixtures("prefect_api", "report_env")
def test_report_states_coverage_and_dry_run_prints_paths(
    migrated_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.edge.cli import main

    with migrated_db.connect() as conn:  # one validated day of seven
        day = MONDAY + timedelta(days=1)
        _check(conn, day, "learning_events", "exp0", "passed")
        _check(conn, day, "learning_events", None, "passed", score=100.0)
    main(["run", "report", "--week", WEEK, "--dry-run"])
    out = capsys.readouterr().out
    (line,) = out.splitlines()  # the outcome, once
    assert line.startswith(f"report: done: report {WEEK} written, nothing sent: ")
    assert "quality validated 1 of 7 days (Tue 18); " in line
    assert "{" not in out and "'eml'" not in out
    found = re.search(r" (/\S+/report\.html) \(and report\.eml, report\.txt\)$", line)
    assert found is not None, line
    html_path = Path(found.group(1))
    paths = [html_path, html_path.parent / "report.eml"]
    assert all(p.exists() for p in paths)
    html = html_path.read_text(encoding="utf-8")
    text = (paths[0].parent / "report.txt").read_text(encoding="utf-8")
    assert "Pass rate: 100.0%, validated 1 of 7 days (Tue 18)" in text
    assert 'id="coverage"' in html and "validated 1 of 7 days" in html


def test_demo_capacity_history_matches_the_tables_and_feeds_the_report(demo_db: Database) -> None:
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM learning_events").fetchone()
        history = conn.execute(
            "SELECT max(value) FROM capacity_planning_metrics"
            " WHERE metric_name = 'row_count' AND resource_name = 'learning_events'"
        ).fetchone()
        assert rows is not None and history is not None
        # the history's last point is what the table held at the last midnight: at most what it
        # holds now, and the same order of magnitude (the seed's 386M rows for 28k are gone)
        assert 0.5 * rows[0] <= history[0] <= rows[0]
        # a capacity backfill of last week gives the report projections for that week
        now = clock.db_now(conn)
        week = report.parse_week(None, "UTC", now=now)
        done = run_job(
            "backfill", start=week.days[0].isoformat(), end=week.days[-1].isoformat(), jobs=["capacity"]
        )
        assert done.verdict.kind is Kind.DONE, done.verdict
        assert done.results[0].result["outcomes"] == {"done": 7}
        data = report.data.gather(conn, week, settings.Policy(), {}, now=now)
    assert "learning_events" in data.size_history
    projected = [p for p in data.projections if p["resource"] == "learning_events"]
    assert projected and projected[0].get("growth_per_day") is not None
    assert week.start <= projected[0]["measured_at"] <= week.end
