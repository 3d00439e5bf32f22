"""The weekly report counts what happened, as the database says: one backfill request is one run (a
rejected one included, shown as rejected), the report never counts itself, shows nothing after the
instant it was generated, and draws only what it has. Each report is rendered for a `now` given as
a parameter and read back from its text and HTML; a real Chromium reads the HTML as a reader sees it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from flows import report
from flows.core import clock
from flows.core.policy import settings
from flows.report import charts
from tests.browser import chromium_page
from tests.conftest import Database, flow_run
from tests.test_report import report_env  # noqa: F401 - fixture

BERLIN = "Europe/Berlin"
DAILY = ("5 0 * * *", "UTC")


def _berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(BERLIN))


def _ledger(conn: Any, job: str, status: str, at: datetime, **extra: Any) -> UUID:
    finished = None if status == "started" else at + timedelta(seconds=2)
    row = conn.execute(
        "INSERT INTO pgtender_operations (job, status, started_at, finished_at, pid, error)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING operation_id",
        (job, status, at, finished, extra.get("pid"), extra.get("error")),
    ).fetchone()
    return UUID(str(row[0]))


def _health(conn: Any, check: str, status: str, window_start: datetime) -> None:
    conn.execute(
        "INSERT INTO data_quality_checks (check_name, suite, target, window_start, window_end, status)"
        " VALUES (%s, 'health', 'learning_events', %s, %s, %s)",
        (check, window_start, window_start + timedelta(minutes=5), status),
    )


# The rows of the table that follows the heading starting with the given text, {header: cell text}.
TABLE_AFTER = """(title) => {
    const h = [...document.querySelectorAll('h2, h3')].find(e => e.innerText.startsWith(title));
    const t = h.nextElementSibling;
    const heads = [...t.querySelectorAll('th')].map(e => e.innerText.trim());
    return [...t.querySelectorAll('tr')].slice(1).map(tr => Object.fromEntries(
        [...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.innerText.trim()])));
}"""


def _job_line(text: str, job: str) -> list[str]:
    """The numbers of a job's line in the text: runs / succeeded / problems / failed / skipped /
    abandoned[ / rejected] / late."""
    line = next(ln for ln in text.splitlines() if ln.startswith(f"  {job} "))
    return [part.strip() for part in line[len(f"  {job} ") :].split(" / ")]


# ---------------------------------------------------------------- a DST week in Berlin


def test_a_dst_week_counts_its_local_week_and_nothing_after_its_generation(
    migrated_db: Database, tmp_path: Path
) -> None:
    """2026-W13 in Berlin: Monday 23 00:00 CET to Monday 30 00:00 CEST (167 h). The report is
    generated on Sunday 29 at 21:56 CEST, while its own run is still going: its own row, a run and a
    health window after 21:56 are not in it, and every time it shows is Berlin time, never later."""
    policy = settings.Policy.model_validate({"report": {"timezone": BERLIN}})
    now = _berlin(2026, 3, 29, 21, 56)
    week = report.parse_week("2026-W13", BERLIN, now=now)
    assert not week.complete and week.hours == 167
    with migrated_db.connect() as conn:
        _ledger(conn, "partitions", "completed", _berlin(2026, 3, 22, 23, 30))  # Sunday before: out
        _ledger(conn, "partitions", "completed", _berlin(2026, 3, 23, 0, 30))  # Monday 00:30 CET: in
        for day in range(23, 30):  # 00:05 UTC every day: 01:05 CET, then 02:05 CEST on Sunday
            _ledger(conn, "partitions", "completed", datetime(2026, 3, day, 0, 5, tzinfo=UTC))
        _ledger(conn, "partitions", "failed", _berlin(2026, 3, 29, 21, 57), error="after the report")
        own = _ledger(conn, "report", "started", _berlin(2026, 3, 29, 21, 55), pid=conn.info.backend_pid)
        _ledger(conn, "report", "completed", _berlin(2026, 3, 23, 8, 0))  # last Monday's report
        # the alert around the change: 01:55 CET, then 03:00 CEST (02:00-03:00 does not exist)
        _health(conn, "health.event_lag", "failed", _berlin(2026, 3, 29, 1, 55))
        _health(conn, "health.event_lag", "failed", _berlin(2026, 3, 29, 3, 0))
        _health(conn, "health.xid_age", "warning", _berlin(2026, 3, 29, 21, 55))  # seen at 21:55
        _health(conn, "health.xid_age", "warning", _berlin(2026, 3, 29, 22, 0))  # after 21:56: not shown
        built = report.build(
            conn,
            week,
            [],
            policy=policy,
            schedules={"partitions": DAILY, "report": ("0 8 * * 1", BERLIN)},
            state_dir=tmp_path,
            now=now,
            exclude=own,
        )
    text = built.text.read_text(encoding="utf-8")
    assert (
        "2026-03-22 23:00 to 2026-03-29 22:00 UTC (167 h: Monday 00:00 to Monday 00:00 Europe/Berlin)" in text
    )
    # 8 partitions runs (Monday 00:30 CET and the seven 00:05 UTC ones); the failed one at 21:57 is
    # after the report: not counted. Firings up to 21:56 - 30 min: Mon..Sun 00:05 UTC, none late.
    assert _job_line(text, "partitions") == ["8", "8", "0", "0", "0", "0", "0 of 7"]
    # the report: last Monday's run, not its own (which has not ended)
    assert _job_line(text, "report") == ["1", "1", "0", "0", "0", "0", "0 of 1"]
    assert "health.event_lag [learning_events] failed in 2 window(s), Sun 29 01:55 to Sun 29 03:00" in text
    assert "health.xid_age [learning_events] warning in 1 window(s), Sun 29 21:55 to Sun 29 21:55" in text
    assert "Generated by pgtender at 2026-03-29 21:56 Europe/Berlin." in text
    assert "rejected" not in text.split("MAINTENANCE JOBS")[1].split("\n")[0]  # no column for nothing
    shown = [
        datetime.strptime(f"2026 03 {m[2]} {m[3]}", "%Y %m %d %H:%M")
        for m in re.finditer(r"(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (\d\d) (\d\d:\d\d)", text)
    ]
    assert shown and max(shown) <= now.replace(tzinfo=None)  # no time after the generation
    assert built.summary["health_alerts"] == 3
    # what a reader sees, against what the database holds up to the report's instant
    with migrated_db.connect() as conn:
        conn.execute("SET TimeZone = 'Europe/Berlin'")
        alerts = conn.execute(
            "SELECT check_name, status, count(*)::text, to_char(min(window_start), 'Dy DD HH24:MI'),"
            "       to_char(max(window_start), 'Dy DD HH24:MI')"
            "  FROM data_quality_checks WHERE suite = 'health' AND window_start <= %s"
            " GROUP BY 1, 2 ORDER BY 1",
            (now,),
        ).fetchall()
        partitions = conn.execute(
            "SELECT count(*)::text FROM pgtender_operations WHERE job = 'partitions'"
            " AND started_at >= %s AND started_at < %s AND started_at <= %s",
            (week.start, week.end, now),
        ).fetchone()
    with chromium_page() as (page, _refused):
        page.goto(built.html.as_uri(), wait_until="load")
        shown_alerts = page.evaluate(TABLE_AFTER, "Health alerts")
        shown_jobs = {r["job"]: r for r in page.evaluate(TABLE_AFTER, "Maintenance jobs")}
        generated = page.inner_text("#generated")
    assert [
        (a["check"], a["status"], a["windows"], a["first seen (Europe/Berlin)"], a["last seen"])
        for a in sorted(shown_alerts, key=lambda a: a["check"])
    ] == [tuple(r) for r in alerts]
    assert shown_jobs["partitions"]["runs"] == partitions[0] == "8"
    assert (shown_jobs["report"]["runs"], shown_jobs["report"]["succeeded"]) == ("1", "1")
    assert generated == "2026-03-29 21:56 Europe/Berlin"


# ---------------------------------------------------------------- a fresh install


def _capacity_snapshot(conn: Any, at: datetime) -> None:
    """What the first capacity run of `pgtender up` leaves: one size per table, no projection."""
    for name, size in (("learning_events", 8e6), ("query_performance_logs", 3e6)):
        conn.execute(
            "INSERT INTO capacity_planning_metrics (metric_name, resource_type, resource_name,"
            " measured_at, value, unit) VALUES ('total_bytes', 'table', %s, %s, %s, 'bytes')",
            (name, at, size),
        )


def test_a_fresh_install_draws_no_projection_it_does_not_have(migrated_db: Database, tmp_path: Path) -> None:
    policy = settings.Policy()
    now = datetime(2026, 12, 6, 21, 56, tzinfo=UTC)
    week = report.parse_week("2026-W49", "UTC", now=now)
    with migrated_db.connect() as conn:
        _capacity_snapshot(conn, now - timedelta(hours=2))
        built = report.build(
            conn, week, [], policy=policy, schedules=_schedules(policy), state_dir=tmp_path, now=now
        )
    text = built.text.read_text(encoding="utf-8")
    html = built.html.read_text(encoding="utf-8")
    assert "No projections yet." in text and 'id="no-projections"' in html
    assert 'alt="Table growth; the week shaded"' in html and "dashed" not in html
    jobs = ("capacity", "health", "partitions", "quality", "report", "retention", "views")
    assert all(_job_line(text, job)[:6] == ["0"] * 6 for job in jobs)
    # the chart itself: two tables, no dashed line, no room kept for one, nothing in the title
    from matplotlib.dates import date2num

    figure = charts.growth_figure({"learning_events": [(date(2026, 12, 6), 8e6)]}, {}, week=week.days)
    axes = figure.axes[0]
    assert axes.get_title() == "Table growth; the week shaded"
    assert [line.get_linestyle() for line in axes.get_lines()] == ["-"]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["learning_events"]
    assert axes.get_xlim()[1] == pytest.approx(date2num(week.days[-1] + timedelta(days=1)))
    with_growth = charts.growth_figure(
        {"learning_events": [(date(2026, 12, 6), 8e6)]}, {"learning_events": 1e5}, week=week.days
    )
    assert "dashed" in with_growth.axes[0].get_title()
    assert [line.get_linestyle() for line in with_growth.axes[0].get_lines()] == ["-", "--"]


def _schedules(policy: Any) -> dict[str, tuple[str, str]]:
    from flows.registry import REGISTRY

    return {job: (s.cron, s.timezone) for job, s in REGISTRY.schedules(policy).items()}


def _report_paths(out: str) -> list[Path]:
    """The files a `pgtender run report --dry-run` named in its outcome line."""
    return [Path(p) for p in re.findall(r"(/\S+\.(?:html|eml|txt))", out)]


@pytest.mark.calendar
@pytest.mark.usefixtures("prefect_api", "report_env")
def test_the_report_never_counts_itself(migrated_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    """Two dry runs of the report through the CLI on a fresh install: the first sees no run at all
    (not even itself); the second counts the first (finished) and not itself (still going)."""
    from flows.edge.cli import main

    with migrated_db.connect() as conn:
        now = clock.db_now(conn)
    main(
        [
            "run",
            "report",
            "--week",
            report.parse_week(None, BERLIN, now=now + timedelta(days=7)).label,
            "--dry-run",
        ]
    )
    first = next(p for p in _report_paths(capsys.readouterr().out) if p.name == "report.html")
    assert _job_line((first.parent / "report.txt").read_text(encoding="utf-8"), "report")[:2] == ["0", "0"]
    with migrated_db.connect() as conn:
        started = conn.execute("SELECT started_at FROM pgtender_operations WHERE job = 'report'").fetchone()[
            0
        ]
    main(
        [
            "run",
            "report",
            "--week",
            report.parse_week(None, BERLIN, now=started + timedelta(days=7)).label,
            "--dry-run",
        ]
    )
    second = next(p for p in _report_paths(capsys.readouterr().out) if p.name == "report.html")
    assert _job_line((second.parent / "report.txt").read_text(encoding="utf-8"), "report")[:2] == ["1", "1"]


# ---------------------------------------------------------------- a week with backfills


def _days_back(conn: Any, n: int) -> str:
    return (clock.db_now(conn).astimezone(UTC).date() - timedelta(days=n)).isoformat()


@pytest.mark.calendar
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_week_with_backfills_counts_requests_and_shows_the_rejected(
    migrated_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CLI backfill of 3 days (no server: run here), a flow run of 2 days (as the UI starts one,
    parameters as strings), a CLI request for a future day and a flow run starting after its end:
    4 runs, 2 succeeded, 2 rejected; the per-day items are not runs. Chromium reads the HTML."""
    from flows.edge.cli import main

    with migrated_db.connect() as conn:
        d = {n: _days_back(conn, n) for n in range(1, 6)}
        future = (clock.db_now(conn).astimezone(UTC).date() + timedelta(days=10)).isoformat()
    main(["backfill", "--start", d[5], "--end", d[3], "--jobs", "capacity"])
    ui = flow_run("backfill", start=d[2], end=d[1], jobs=["capacity"])
    assert ui.is_completed()
    with pytest.raises(SystemExit) as refused:
        main(["backfill", "--start", future, "--end", future, "--jobs", "capacity"])
    assert refused.value.code == 2
    bad = flow_run("backfill", start=d[1], end=d[2])
    assert bad.is_failed() and (bad.message or "").startswith("Bad input: ")
    capsys.readouterr()

    with migrated_db.connect() as conn:
        now = clock.db_now(conn)
        first = conn.execute(
            "SELECT min(started_at) FROM pgtender_operations WHERE job = 'backfill'"
        ).fetchone()[0]
        week = report.parse_week(None, "UTC", now=first + timedelta(days=7))
        by_status = dict(
            conn.execute(
                "SELECT status, count(*) FROM pgtender_operations WHERE job = 'backfill'"
                " AND NOT params ? 'item' AND started_at >= %s AND started_at < %s GROUP BY status",
                (week.start, week.end),
            ).fetchall()
        )
        items = conn.execute(
            "SELECT count(*) FROM pgtender_operations WHERE job = 'backfill' AND params ? 'item'"
        ).fetchone()[0]
        reasons = [
            r[0]
            for r in conn.execute(
                "SELECT error FROM pgtender_operations WHERE status = 'rejected' ORDER BY started_at"
            ).fetchall()
        ]
        policy = settings.Policy()
        built = report.build(
            conn, week, [], policy=policy, schedules=_schedules(policy), state_dir=tmp_path, now=now
        )
    assert items == 5  # the days: parts of two runs
    assert len(reasons) == 2 and "in the future" in reasons[0] and "after end" in reasons[1]
    runs = sum(by_status.values())
    if runs == 4:  # all four in one week (not straddling a Monday 00:00 UTC)
        assert by_status == {"completed": 2, "rejected": 2}
    text = built.text.read_text(encoding="utf-8")
    line = _job_line(text, "backfill")
    assert line[:2] == [str(runs), str(by_status.get("completed", 0))]
    assert line[6] == str(by_status.get("rejected", 0))
    backfills = text.split("BACKFILLS (")[1].split("\n\n")[0].splitlines()[1:]
    assert len(backfills) == runs
    expected_lines = [
        f"  {d[5]} .. {d[3]} (3 days)  capacity: succeeded (3 item(s): done 3)",
        f"  {d[2]} .. {d[1]} (2 days)  capacity: succeeded (2 item(s): done 2)",
        f"  {future} .. {future} (1 day)  capacity: rejected ({reasons[0]})",
        f"  {d[1]} .. {d[2]}  quality, capacity (default): rejected ({reasons[1]})",
    ]
    if runs == 4:
        assert [ln[14:] for ln in backfills] == expected_lines  # after "  Sun 06 21:56"

    with chromium_page() as (page, _refused):
        page.goto(built.html.as_uri(), wait_until="load")
        table = page.evaluate(TABLE_AFTER, "Maintenance jobs")
        rows = page.evaluate(TABLE_AFTER, "Backfills")
    shown = next(r for r in table if r["job"] == "backfill")
    assert (shown["runs"], shown["succeeded"], shown["rejected"]) == (
        str(runs),
        str(by_status.get("completed", 0)),
        str(by_status.get("rejected", 0)),
    )
    assert len(rows) == runs and sorted(r["outcome"] for r in rows) == sorted(
        {"completed": "succeeded", "rejected": "rejected"}[s] for s, n in by_status.items() for _ in range(n)
    )
