"""Findings read as findings: a run that found problems ends "Problems found" with one line and no
traceback (logs and UI); backfill re-runs carry earlier outcomes forward; form messages name the
form's fields."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
import structlog

from flows.core import clock
from flows.core.engine import Kind
from tests.conftest import Database, flow_run, run_job, verdict_of


def _flow_run_state(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


@pytest.mark.usefixtures("prefect_api")
def test_a_health_run_with_findings_has_no_traceback(
    migrated_db: Database, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with migrated_db.connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, ingested_at, event_type)"
            " VALUES (now() - interval '1 hour', now() - interval '1 hour', 'x')"
        )
    caplog.set_level(logging.INFO)
    with structlog.testing.capture_logs() as events:
        state = flow_run("health")
    out, err = capfd.readouterr()
    assert state.is_failed() and verdict_of(state).kind is Kind.PROBLEMS
    assert state.message is not None and "\n" not in state.message
    assert state.message.startswith("Problems found: ")
    assert "health.event_lag[learning_events]" in state.message
    text = caplog.text + out + err + repr(events)
    assert "Traceback" not in text and "Encountered exception" not in text
    assert any(e["event"] == "health problems found" and e["exit_code"] == 1 for e in events)
    # the UI shows the same: a Failed state (Prefect's own name: the run lists show it) whose
    # one-line message starts with the finding's kind
    flow_run_id = state.state_details.flow_run_id
    stored = _flow_run_state(str(flow_run_id))
    assert stored.name == "Failed" and stored.type.value == "FAILED"
    assert stored.message == state.message


@pytest.mark.usefixtures("prefect_api")
def test_backfill_rerun_keeps_problems_and_exit_code(
    demo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.edge.cli import main

    today = clock.today()
    day = today - timedelta(days=2)
    with demo_db.connect() as conn:  # the day's events lost: its quality suite fails (volume 0)
        conn.execute(
            "DELETE FROM learning_events WHERE occurred_at >= %s::date AND occurred_at < %s::date + 1",
            (day, day),
        )
    args = ["backfill", "--start", day.isoformat(), "--end", day.isoformat(), "--jobs", "quality"]
    with pytest.raises(SystemExit) as first:
        main(args)
    assert first.value.code == 1
    capsys.readouterr()
    # the same backfill again (CLI or the UI's form: same request): nothing re-runs, the day shows
    # its recorded outcome, and the exit code still counts it
    with pytest.raises(SystemExit) as again:
        main(args)
    assert again.value.code == 1
    out, err = capsys.readouterr()
    assert "problems" in out  # the days x jobs table
    (line,) = err.strip().splitlines()[-1:]  # the outcome, once
    assert line.startswith("backfill: problems found: ") and "recorded earlier" in line
    assert f"quality {day.isoformat()}" in line
    with demo_db.connect() as conn:
        runs = conn.execute(
            "SELECT status FROM pgtender_operations WHERE job = 'backfill' AND NOT params ? 'item'"
            " ORDER BY started_at"
        ).fetchall()
        items = conn.execute(
            "SELECT count(*) FROM pgtender_operations WHERE job = 'backfill' AND params ? 'item'"
        ).fetchone()
    assert runs == [("problems",), ("problems",)] and items == (1,)  # the item ran once
    report = run_job("backfill", start=day.isoformat(), end=day.isoformat(), jobs=["quality"])
    (result,) = report.results
    assert report.verdict.kind is Kind.PROBLEMS and report.verdict.exit_code == 1
    assert result.result["already_done"] == 1 and result.result["outcomes"] == {"problems": 1}


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        ("2026-13-45", "2026-01-02", ("start",)),
        ("2026-01-03", "2026-01-02", ("start", "after end")),
        (None, "2099-01-01", ("end", "in the future")),
    ],
)
def test_form_messages_name_the_form_fields(
    migrated_db: Database, start: str | None, end: str, words: tuple[str, ...]
) -> None:
    start = start or (clock.today() - timedelta(days=1)).isoformat()
    state = flow_run("backfill", start=start, end=end)
    assert state.is_failed() and verdict_of(state).kind is Kind.BAD_INPUT
    message = state.message or ""
    assert all(w in message for w in words), message
    assert "--" not in message and "\n" not in message and "Traceback" not in message
