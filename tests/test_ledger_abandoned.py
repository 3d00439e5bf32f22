"""Issue 12.6: a ledger row left 'started' by a run that died is marked abandoned by the next run of
its job (with the time it was found), and the report never counts it as running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from flows import report
from flows.core import db, ledger, migrations
from flows.core.engine import Done
from tests.conftest import Database
from tests.engine_fixtures import custom_run

STARTER = """
import sys
import psycopg
from flows.core import ledger
conn = psycopg.connect(sys.argv[1], autocommit=True)
op = ledger.start_operation(conn, sys.argv[2], flow_run_id=sys.argv[3] if len(sys.argv) > 3 else None)
print(op.operation_id, flush=True)
sys.stdin.read()  # work "forever", until killed
"""


def _row(conn: Any, operation_id: UUID) -> tuple[Any, ...]:
    return conn.execute(
        "SELECT status, started_at, finished_at, error, counts, pid FROM pgtender_operations"
        " WHERE operation_id = %s",
        (operation_id,),
    ).fetchone()


def _wait_until_session_gone(conn: Any, operation_id: UUID) -> None:
    """The server notices a killed client's socket on its own schedule: wait for that (a
    condition, bounded), so the test never depends on how fast it happens."""
    deadline = time.monotonic() + 30
    while conn.execute(
        "SELECT pgtender_session_alive(pid, started_at) FROM pgtender_operations WHERE operation_id = %s",
        (operation_id,),
    ).fetchone()[0]:
        assert time.monotonic() < deadline, "the killed run's session never went away"
        time.sleep(0.05)


@pytest.fixture
def killed_run(migrated_db: Database) -> Iterator[Any]:
    """start(job) -> operation id of a run in another process, killed with SIGKILL after its start."""
    procs: list[subprocess.Popen[str]] = []

    def start(job: str, flow_run_id: str | None = None, kill: bool = True) -> UUID:
        args = [sys.executable, "-c", STARTER, migrated_db.dsn, job, *([flow_run_id] if flow_run_id else [])]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        operation_id = UUID(proc.stdout.readline().strip())
        if kill:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            with migrated_db.connect() as conn:
                _wait_until_session_gone(conn, operation_id)
        return operation_id

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_next_run_marks_a_killed_run_abandoned(migrated_db: Database, killed_run: Any) -> None:
    alive = killed_run("views", kill=False)  # still running in its own process
    dead = killed_run("views")
    other_job = killed_run("capacity")
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        assert _row(conn, dead)[0] == "started"
        before = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        op = ledger.start_operation(conn, "views")
        status, started_at, finished_at, error, _, pid = _row(conn, dead)
        assert status == "abandoned"
        assert started_at < before <= finished_at  # the time it was found, not when it started
        assert f"pid {pid}" in error and str(op.operation_id) in error
        assert [a.operation_id for a in op.abandoned] == [dead]
        assert op.abandoned[0].found_at == finished_at
        assert _row(conn, alive)[0] == "started"  # its session is alive: left alone
        assert _row(conn, other_job)[0] == "started"  # another job's row waits for that job's run
        ledger.complete_operation(conn, op.operation_id)
        again = ledger.start_operation(conn, "views")
        assert again.abandoned == []  # found once


def test_report_does_not_count_dead_runs_as_running(migrated_db: Database, killed_run: Any) -> None:
    killed_run("views", kill=False)
    killed_run("views")
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        op = ledger.start_operation(conn, "capacity")
        ledger.complete_operation(conn, op.operation_id)
        now, first = conn.execute("SELECT now(), min(started_at) FROM pgtender_operations").fetchone()
        day = first.astimezone(UTC).date()
        week = report.Week(label="test", monday=day - timedelta(days=day.weekday()), tz="UTC", complete=False)
        stats = {s.job: s for s in report.job_stats(conn, week, {}, now=now)}
    assert (stats["views"].runs, stats["views"].running, stats["views"].abandoned) == (2, 1, 1)
    assert (stats["capacity"].completed, stats["capacity"].abandoned) == (1, 0)


def test_a_run_marked_abandoned_that_was_alive_after_all_records_how_it_ended(
    migrated_db: Database,
) -> None:
    """Its session was lost (outage) while the process went on: the truth wins, with a trace."""
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        op = ledger.start_operation(conn, "views")
        marked = ledger.abandon(conn, op.operation_id, "abandoned: test")
        assert marked is not None
        ledger.complete_operation(conn, op.operation_id, {"views": 3})
        status, _, _, error, counts, _ = _row(conn, op.operation_id)
    assert status == "completed" and error is None
    assert counts["views"] == 3 and counts["marked_abandoned"] == "abandoned: test"
    assert "marked_abandoned_at" in counts


def test_ledger_entry_holds_its_session_for_the_whole_run(migrated_db: Database) -> None:
    """The row's session is the run's proof of life: it must not go back to the pool (where it
    could be closed as idle, or serve someone else) before the row is finished."""

    def work(op: Any) -> Done:
        with op.connection() as other:
            ledger_pid = migrated_db.scalar(
                "SELECT pid FROM pgtender_operations WHERE operation_id = %s", (op.operation_id,)
            )
            assert other.execute("SELECT pg_backend_pid()").fetchone()[0] != ledger_pid
            assert migrated_db.scalar(
                "SELECT pgtender_session_alive(pid, started_at) FROM pgtender_operations"
                " WHERE operation_id = %s",
                (op.operation_id,),
            )
        ran.append(op)
        return Done()

    ran: list[Any] = []
    custom_run(work)
    (op,) = ran
    assert migrated_db.scalar(
        "SELECT status FROM pgtender_operations WHERE operation_id = %s", (op.operation_id,)
    ) == ("completed")


def test_a_run_whose_flow_run_ended_is_abandoned(
    prefect_api: None, migrated_db: Database, killed_run: Any
) -> None:
    """Session alive (a wedged process) but Prefect says its flow run ended: abandoned. A flow run
    this API has never heard of (another Prefect server's) is judged by its session alone."""
    from prefect import flow, get_client
    from prefect.states import Crashed

    @flow(name="pgtender-test-dummy")
    def dummy() -> None:
        return None

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(dummy)
        client.set_flow_run_state(run.id, Crashed(message="worker lost"), force=True)
    ended = killed_run("views", flow_run_id=str(run.id), kill=False)
    unknown = killed_run("views", flow_run_id="00000000-0000-4000-8000-000000000001", kill=False)
    from flows.edge.orchestrator import PrefectOrchestrator

    ran: list[Any] = []
    custom_run(lambda run: ran.append(run) or Done(), orchestrator=PrefectOrchestrator())
    assert [a.operation_id for a in ran[0].abandoned] == [ended]
    with migrated_db.connect() as conn:
        status, _, _, error, _, _ = _row(conn, ended)
        assert status == "abandoned" and f"flow run {run.id} ended Crashed" in error
        assert _row(conn, unknown)[0] == "started"


def test_migration_0011_round_trips_with_new_statuses(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        op = ledger.start_operation(conn, "views")
        ledger.abandon(conn, op.operation_id, "abandoned: gone")
        conn.execute(
            "INSERT INTO pgtender_operations (job, status, finished_at, error)"
            " VALUES ('quality', 'problems', now(), 'suite x failed')"
        )
        migrations.rollback(conn, 10)
        rows = conn.execute("SELECT job, status, error FROM pgtender_operations ORDER BY job").fetchall()
        assert rows == [
            ("quality", "failed", "ProblemsFound: suite x failed"),
            ("views", "failed", "abandoned: gone"),
        ]
        migrations.migrate(conn)
        assert conn.execute("SELECT pgtender_session_alive(pg_backend_pid(), now())").fetchone() == (True,)


def test_session_alive_ignores_a_reused_pid(migrated_db: Database) -> None:
    """A pid the server gave to a later session does not keep an old run alive."""
    with migrated_db.connect() as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        long_ago = datetime.now(UTC) - timedelta(days=365)
        assert conn.execute("SELECT pgtender_session_alive(%s, %s)", (pid, long_ago)).fetchone() == (False,)
        assert conn.execute("SELECT pgtender_session_alive(%s, now())", (pid,)).fetchone() == (True,)
