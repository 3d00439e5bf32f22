"""Backfill: validation, day-by-day idempotent and resumable runs, locks, the flow and the CLI."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows import backfill, capacity
from flows.core import clock, db, locks, markdown
from flows.core.engine import Kind, PlainOrchestrator, Verdict
from flows.core.errors import ConfigError
from flows.core.policy import settings
from flows.edge import backfill_cli
from flows.registry import REGISTRY
from tests.conftest import Database, flow_run, run_job, verdict_of

TODAY = date(2026, 6, 15)


def _today() -> date:
    return clock.today()  # a calendar session moves it with the database's clock


def _days_back(n: int) -> str:
    return (_today() - timedelta(days=n)).isoformat()


def _validate(start: Any, end: Any, jobs: Any = None, **options: Any) -> backfill.Request:
    options.setdefault("today", _today())
    return backfill.validate(start, end, jobs, known=REGISTRY.replays(), **options)


class _CtrlCAfter(PlainOrchestrator):
    """No Prefect; Ctrl-C once the run reported ``n`` items done (progress is reported after each)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[float] = []

    def progress(self, artifact_id: Any, value: float) -> None:
        self.seen.append(value)
        if len(self.seen) == self.n:
            raise KeyboardInterrupt


def _run_row(conn: psycopg.Connection[Any]) -> list[tuple[str, dict[str, Any]]]:
    """The backfill runs' own ledger rows (not their items'), oldest first."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT status, counts FROM pgtender_operations WHERE job = 'backfill' AND NOT params ? 'item'"
            " ORDER BY started_at"
        ).fetchall()
    ]


def _write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    config = tmp_path / "pgtender.toml"
    config.write_text(text)
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))


def _current_quality(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(current rows, (check, window) pairs with more than one current row)."""
    row = conn.execute(
        "SELECT count(*), count(*) - count(DISTINCT (check_name, target, window_start, window_end))"
        " FROM data_quality_checks WHERE is_current AND starts_with(check_name, 'quality.')"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _item_rows(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, str | None]]:
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT params->>'job', params->>'day', status, counts->>'outcome' FROM pgtender_operations"
            " WHERE job = 'backfill' AND params ? 'item' ORDER BY started_at, params->>'day'"
        ).fetchall()
    ]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("start", "end", "jobs", "message"),
    [
        ("2026-06-10", "2026-06-09", None, "start 2026-06-10 is after end 2026-06-09"),
        ("2026-06-10", "2026-06-16", None, "end 2026-06-16 is in the future"),
        ("2026-02-30", "2026-03-01", None, "start '2026-02-30' is not a valid calendar date"),
        ("June 1", "2026-06-01", None, "start must be a date YYYY-MM-DD"),
        ("2026-01-01", "2026-06-01", None, "152 days exceed backfill.max_days = 92; set force (--force)"),
        ("2026-06-01", "2026-06-02", "quality,nope", "unknown backfill job 'nope'"),
        ("2026-06-01", "2026-06-02", " , ", "jobs is empty"),
    ],
)
def test_validation_names_the_problem_in_one_line(
    start: str, end: str, jobs: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _validate(start, end, jobs, today=TODAY)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_validation_accepts_force_and_orders_jobs() -> None:
    request = _validate("2026-01-01", "2026-06-15", "views,capacity,partitions", force=True, today=TODAY)
    assert request.jobs == ("partitions", "capacity", "views")
    assert len(request.days) == 166
    items = request.items()
    assert items[0] == backfill.Item("partitions", "range") and items[-1] == backfill.Item("views", "range")
    assert [i.day for i in items[1:4]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    default = _validate("2026-06-14", "2026-06-15", None, today=TODAY)
    assert default.jobs == ("capacity", "quality")  # the default jobs, in the registry's order
    assert default.key == _validate("2026-06-14", "2026-06-15", ["capacity", "quality"], today=TODAY).key
    assert default.key != _validate("2026-06-13", "2026-06-15", None, today=TODAY).key
    small = _validate(
        "2026-06-14", "2026-06-15", None, today=TODAY, policy=settings.BackfillPolicy(max_days=2)
    )
    assert small.days == [date(2026, 6, 14), date(2026, 6, 15)]


def test_chunks_keep_range_jobs_apart() -> None:
    request = _validate("2026-06-01", "2026-06-05", "quality,partitions,views", today=TODAY)
    parts = backfill.chunks(request, request.items(), 2)
    assert [[(i.job, i.day) for i in p] for p in parts] == [
        [("partitions", "range")],
        [("quality", "2026-06-01"), ("quality", "2026-06-02")],
        [("quality", "2026-06-03"), ("quality", "2026-06-04")],
        [("quality", "2026-06-05")],
        [("views", "range")],
    ]


def test_cli_bad_request_exits_2_and_changes_nothing(
    migrated_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.edge.cli import main

    future = (_today() + timedelta(days=1)).isoformat()
    for args in (
        ["--start", _days_back(1), "--end", future],
        ["--start", _days_back(1), "--end", _days_back(2)],
        ["--start", _days_back(2), "--end", _days_back(1), "--jobs", "quality,retention"],
        ["--start", _days_back(200), "--end", _days_back(1)],
    ):
        with pytest.raises(SystemExit) as caught:
            main(["backfill", *args])
        assert caught.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err and err[-1].startswith("backfill: bad input: "), err
    # each request was refused once the database was reached (a rejected row), nothing else happened
    assert migrated_db.scalar("SELECT count(*) FROM pgtender_operations") == 4
    assert migrated_db.scalar("SELECT count(*) FROM pgtender_operations WHERE status <> 'rejected'") == 0
    assert migrated_db.scalar("SELECT count(*) FROM data_quality_checks") == 0


# ---------------------------------------------------------------- the job, here (no Prefect)


def test_backfill_is_idempotent_and_resumable(
    demo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_config(tmp_path, monkeypatch, "[backfill]\nchunk_days = 2\n")
    values = {"start": _days_back(4), "end": _days_back(2), "jobs": ["quality", "capacity"]}
    # An interrupted run: Ctrl-C after the third item (raised where the run reports its progress).
    stop = _CtrlCAfter(3)
    with pytest.raises(KeyboardInterrupt):
        run_job("backfill", stop, **values)
    assert stop.seen == pytest.approx([100 / 6, 200 / 6, 300 / 6])
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        first_items = _item_rows(conn)
        assert [(j, d) for j, d, _, _ in first_items] == [
            ("capacity", _days_back(4)),
            ("quality", _days_back(4)),
            ("capacity", _days_back(3)),
        ]
        assert all(status == "completed" for _, _, status, _ in first_items)
        assert [status for status, _ in _run_row(conn)] == ["interrupted"]
        current_after_three, dup = _current_quality(conn)
        assert dup == 0 and current_after_three > 0

        # Resume: the three finished items keep their recorded outcomes, the other three run.
        report = run_job("backfill", **values)
        assert report.verdict.kind in (Kind.DONE, Kind.PROBLEMS), report.verdict
        summary = report.results[0].result
        assert summary["items"] == 6
        assert summary["already_done"] == 3
        assert sum(summary["outcomes"].get(k, 0) for k in ("done", "problems")) == 6
        assert len(_item_rows(conn)) == 6
        current, dup = _current_quality(conn)
        assert dup == 0
        windows = conn.execute(
            "SELECT count(DISTINCT window_start) FROM data_quality_checks"
            " WHERE is_current AND starts_with(check_name, 'quality.')"
        ).fetchone()
        assert windows is not None and windows[0] == 3
        projections = conn.execute(
            "SELECT count(DISTINCT measured_at) FROM capacity_planning_metrics"
            " WHERE metric_name LIKE '%%_projected' AND measured_at = ANY(%s)",
            ([capacity.day_end(date.fromisoformat(_days_back(n))) for n in (2, 3, 4)],),
        ).fetchone()
        assert projections is not None and projections[0] in (0, 3)  # 0: demo history too short

        # Everything done: a re-run does nothing; force redoes every day, still one current row each.
        again = run_job("backfill", **values).results[0].result
        assert again["already_done"] == 6 and again["outcomes"] == summary["outcomes"]
        assert len(_item_rows(conn)) == 6  # nothing re-run
        superseded_before = conn.execute(
            "SELECT count(*) FROM data_quality_checks WHERE NOT is_current"
        ).fetchone()
        forced = run_job("backfill", force=True, **values).results[0].result
        assert forced["already_done"] == 0 and forced["items"] == 6
        assert _current_quality(conn) == (current, 0)
        superseded_after = conn.execute(
            "SELECT count(*) FROM data_quality_checks WHERE NOT is_current"
        ).fetchone()
        assert superseded_before is not None and superseded_after is not None
        assert superseded_after[0] == superseded_before[0] + current
        runs = _run_row(conn)
        assert len(runs) == 4 and runs[0][0] == "interrupted"
    # The table: days x jobs.
    assert [r["day"] for r in forced["table"]] == [_days_back(4), _days_back(3), _days_back(2)]
    assert set(forced["table"][0]) == {"day", "quality", "capacity"}


def test_held_job_lock_makes_items_busy_then_resume_finishes(
    demo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_config(tmp_path, monkeypatch, "[backfill]\nlock_wait_seconds = 0.3\n")
    values = {"start": _days_back(2), "end": _days_back(1), "jobs": ["quality", "capacity"]}
    with db.connect(demo_db.dsn, autocommit=True) as holder, db.connect(demo_db.dsn, autocommit=True) as conn:
        # Another run holds the quality job lock.
        with locks.job_lock(holder, "quality") as got:
            assert got
            report = run_job("backfill", **values)
        # busy items: an infrastructure error (exit 3), resumable; the run's counts say what happened
        assert report.verdict.kind is Kind.INFRASTRUCTURE and report.verdict.exit_code == 3
        assert "2 busy; run the same command again to resume" in report.verdict.line
        ((status, counts),) = _run_row(conn)
        assert status == "failed" and counts["busy"] == 2 and counts["done"] == 2
        outcomes = {(j, d): o for j, d, _, o in _item_rows(conn)}
        assert [outcomes[("quality", _days_back(n))] for n in (2, 1)] == ["busy", "busy"]
        assert [outcomes[("capacity", _days_back(n))] for n in (2, 1)] == ["done", "done"]
        assert _current_quality(conn)[0] == 0  # no quality work happened under the held lock
        statuses = {(j, d): s for j, d, s, _ in _item_rows(conn)}
        assert statuses[("quality", _days_back(1))] == "skipped"

        # A quality run of one of the days (its day lock) that finishes while the backfill waits:
        # the item runs after it.
        _write_config(tmp_path, monkeypatch, "[backfill]\nlock_wait_seconds = 30\n")
        lock_taken = threading.Event()

        def hold_briefly() -> None:
            day_lock = locks.day_key("quality", _days_back(2))
            with db.connect(demo_db.dsn, autocommit=True) as other, locks.job_lock(other, day_lock):
                lock_taken.set()
                threading.Event().wait(0.5)

        worker = threading.Thread(target=hold_briefly)
        worker.start()
        lock_taken.wait(5)
        waited_report = run_job("backfill", **values)
        worker.join()
        waited = waited_report.results[0].result
        assert waited["already_done"] == 2  # capacity items from the first run
        assert sum(waited["outcomes"].get(k, 0) for k in ("done", "problems")) == 4
        assert _current_quality(conn)[0] > 0 and _current_quality(conn)[1] == 0


def test_range_jobs_run_once_around_the_days(demo_db: Database) -> None:
    request = _validate(_days_back(2), _days_back(1), "partitions,quality,views")
    report = run_job(
        "backfill", start=_days_back(2), end=_days_back(1), jobs=["partitions", "quality", "views"]
    )
    assert report.verdict.kind in (Kind.DONE, Kind.PROBLEMS), report.verdict
    summary = report.results[0].result
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        order = [(j, d) for j, d, _, _ in _item_rows(conn)]
        assert order == [
            ("partitions", "range"),
            ("quality", _days_back(2)),
            ("quality", _days_back(1)),
            ("views", "range"),
        ]
        assert summary["table"][0]["views"] == summary["table"][1]["views"] == "done"
        assert summary["table"][0]["partitions"] == "done"
        refreshed = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics WHERE metric_name = 'view_refresh_ms'"
        ).fetchone()
        assert refreshed is not None and refreshed[0] >= 1
        # The daily rollup recomputes exactly the backfilled days, not its trailing window.
        rolled = conn.execute(
            "SELECT metadata ->> 'days' FROM capacity_planning_metrics"
            " WHERE metric_name = 'view_refresh_ms' AND resource_name = 'learning_events_daily'"
        ).fetchall()
        assert rolled == [(f"{_days_back(2)}..{_days_back(1)}",)]
    text = backfill.table_markdown(
        request,
        {backfill.Item(r["job"], r["day"]): backfill.ItemResult(**r) for r in _summary_items(summary)},
    )
    assert "| day | partitions | quality | views |" in text and "once for the whole range" in text
    assert f"| {markdown.text(_days_back(2))} |" in text  # escaped, as every artifact's data


def _summary_items(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for row in summary["table"]:
        for job in summary["jobs"]:
            day = "range" if job in ("partitions", "views") else row["day"]
            out.append({"job": job, "day": day, "outcome": row[job]})
    return out


# ---------------------------------------------------------------- the flow and the CLI


@pytest.mark.usefixtures("prefect_api")
def test_flow_progress_and_table_artifacts(demo_db: Database) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state = flow_run("backfill", start=_days_back(3), end=_days_back(1), jobs=["capacity"])
    assert state.is_completed(), state.message
    assert verdict_of(state).kind is Kind.DONE
    summary = state.result()
    assert summary["outcomes"] == {"done": 3}
    with demo_db.connect() as conn:
        ops = conn.execute(
            "SELECT status, counts, flow_run_id FROM pgtender_operations"
            " WHERE job = 'backfill' AND NOT params ? 'item'"
        ).fetchall()
        items = conn.execute(
            "SELECT count(*) FROM pgtender_operations WHERE job = 'backfill' AND params->>'parent' IS NOT NULL"
        ).fetchone()
    assert len(ops) == 1 and ops[0][0] == "completed" and ops[0][1]["done"] == 3
    assert items is not None and items[0] == 3
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[ops[0][2]]))
        )
    by_key = {a.key: a for a in arts}
    assert (
        by_key["backfill-progress"].type == "progress"
        and float(str(by_key["backfill-progress"].data)) == 100.0
    )
    outcomes = by_key["backfill-outcomes"]
    assert outcomes.type == "table"
    assert markdown.text(_days_back(2)) in [row["day"] for row in json.loads(str(outcomes.data))]
    assert "backfill-summary" in by_key

    bad = flow_run("backfill", start=_days_back(1), end=_days_back(3))
    assert bad.is_failed()
    verdict = verdict_of(bad)
    assert verdict.kind is Kind.BAD_INPUT and f"start {_days_back(1)} is after end" in verdict.line


@pytest.mark.usefixtures("prefect_api")
def test_flow_future_days_by_the_databases_clock(migrated_db: Database) -> None:
    """ "No future days" is the database's today, also when pgtender's own clock is a day off."""
    with migrated_db.connect() as conn:
        today = clock.db_now(conn).date()
    with clock.travel(timedelta(days=-1)):  # pgtender's clock behind: the database's today is fine
        ran = flow_run("backfill", start=today.isoformat(), end=today.isoformat(), jobs=["capacity"])
    assert ran.is_completed(), ran.message
    tomorrow = (today + timedelta(days=2)).isoformat()  # a day after the database's (and its midnight)
    with clock.travel(timedelta(days=3)):  # pgtender's clock ahead: still the future for the database
        bad = flow_run("backfill", start=tomorrow, end=tomorrow, jobs=["capacity"])
    assert bad.is_failed()
    verdict = verdict_of(bad)
    assert verdict.kind is Kind.BAD_INPUT and "in the future" in verdict.line


@pytest.mark.usefixtures("prefect_api")
def test_cli_local_run_shows_progress_and_table(
    demo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.edge.cli import main

    args = ["backfill", "--start", _days_back(2), "--end", _days_back(1), "--jobs", "capacity"]
    main(args)  # returns: exit 0
    out = capsys.readouterr().out
    assert "day" in out and "capacity" in out and _days_back(2) in out
    assert f"backfill: done: backfill {_days_back(2)}..{_days_back(1)}: 2 item(s) done" in out
    # The same command again resumes: nothing left to do, nothing re-run.
    main(args)
    out = capsys.readouterr().out
    assert "2 item(s) done (2 recorded earlier, not re-run)" in out
    assert (
        demo_db.scalar("SELECT count(*) FROM pgtender_operations WHERE job = 'backfill' AND params ? 'item'")
        == 2
    )


def test_config_file_sets_max_days(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_config(tmp_path, monkeypatch, "[backfill]\nmax_days = 2\n")
    policy = settings.current_policy()
    assert policy.backfill.max_days == 2
    with pytest.raises(ConfigError, match=r"3 days exceed backfill\.max_days = 2"):
        _validate(_days_back(3), _days_back(1), policy=policy.backfill)
    report = run_job("backfill", start=_days_back(3), end=_days_back(1))  # the job reads the same file
    assert report.verdict.kind is Kind.BAD_INPUT
    assert "3 days exceed backfill.max_days = 2" in report.verdict.line
    _write_config(tmp_path, monkeypatch, "[backfill]\nmax_dayz = 2\n")
    with pytest.raises(ConfigError, match=r"backfill\.max_dayz"):
        settings.current_policy()


def _api_for_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI finds the API through PREFECT_API_URL (the test server's)."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))


@pytest.mark.usefixtures("prefect_api")
def test_cli_deployment_refuses_bad_input_before_any_flow_run(
    demo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    from flows.edge.cli import main
    from flows.edge.flows import flow_for

    _api_for_the_cli(monkeypatch)
    deployment_id = flow_for(REGISTRY.get("backfill")).to_deployment(name="backfill").apply()
    with pytest.raises(SystemExit) as caught:
        main(["backfill", "--start", _days_back(1), "--end", _days_back(3), "--deployment"])
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.deployment_id == deployment_id]
    assert runs == [] and caught.value.code == 2


@pytest.mark.usefixtures("prefect_api")
def test_cli_triggers_the_deployment_and_watches_it(
    demo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--deployment --watch: a flow run of the backfill deployment, followed to its end state.

    The flow run is executed here (run_flow on the triggered run) where a worker would pick it up.
    """
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    from flows.edge.flows import flow_for

    _api_for_the_cli(monkeypatch)
    backfill_flow = flow_for(REGISTRY.get("backfill"))
    backfill_flow.to_deployment(name="backfill").apply()

    lines: list[str] = []
    verdicts: list[Verdict] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            values = backfill_cli.values_of(_days_back(2), _days_back(1), "capacity", False, None)
            verdicts.append(
                backfill_cli.trigger(values, name="backfill/backfill", watch=True, echo=lines.append)
            )
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for _ in range(200):
        if lines or errors:
            break
        threading.Event().wait(0.05)
    assert errors == []
    assert lines and lines[0].startswith("triggered backfill/backfill: flow run ")
    run_id = lines[0].rsplit("(", 1)[1].rstrip(")")
    with get_client(sync_client=True) as client:
        triggered = client.read_flow_run(run_id)
    assert triggered.parameters == {"start": _days_back(2), "end": _days_back(1), "jobs": ["capacity"]}
    state = run_flow(backfill_flow, flow_run=triggered, parameters=triggered.parameters, return_type="state")
    watcher.join(60)
    assert not watcher.is_alive() and errors == []
    assert state is not None and state.is_completed()  # type: ignore[union-attr]
    assert [v.kind for v in verdicts] == [Kind.DONE]
    assert (
        demo_db.scalar(
            "SELECT count(*) FROM pgtender_operations WHERE job = 'backfill' AND params ? 'item' AND status = 'completed'"
        )
        == 2
    )
