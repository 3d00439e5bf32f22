"""Issue 26.2: a run whose lock was taken over writes nothing more (fencing tokens), and the run that
takes over waits for — or cancels — the transaction the run before it still had in flight.

Run A's advisory lock lives in its own session; its work runs on pooled sessions. The lock session
is terminated (pg_terminate_backend: what an outage or a DBA does) while A's work goes on, and run
B takes the lock. Everything here is the real engine on the real PostgreSQL; A runs in a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows.core import fence
from flows.core.engine import Done, Kind, RunReport
from tests.conftest import Database, run_job
from tests.engine_fixtures import custom_run


def _wait_for(what: str, ok: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.05)
    pytest.fail(f"{what}: not seen within {timeout} s")


class Background:
    """A run in a thread: its report (or the exception it raised)."""

    def __init__(self, start: Callable[[], RunReport]) -> None:
        self.report: RunReport | None = None
        self.error: BaseException | None = None

        def body() -> None:
            try:
                self.report = start()
            except BaseException as exc:  # handed to the test
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 120.0) -> RunReport:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run A did not end"
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def _terminate_lock_session(database: Database, pid: int) -> None:
    with database.connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
    _wait_for("the lock session gone", lambda: not database.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
    ))  # fmt: skip


def _ledger(database: Database, job: str) -> list[tuple[str, dict[str, Any], str | None]]:
    with database.connect() as conn:
        return conn.execute(
            "SELECT status, counts, error FROM pgtender_operations WHERE job = %s ORDER BY started_at", (job,)
        ).fetchall()


@pytest.fixture
def probe(migrated_db: Database) -> Database:
    with migrated_db.connect() as conn:
        conn.execute("CREATE TABLE fence_probe (run text, at timestamptz DEFAULT clock_timestamp())")
    return migrated_db


def _rows(database: Database) -> list[str]:
    with database.connect() as conn:
        return [r[0] for r in conn.execute("SELECT run FROM fence_probe ORDER BY at").fetchall()]


def test_a_run_whose_lock_was_taken_over_writes_nothing_more(probe: Database) -> None:
    """A passed its check between steps, then lost its lock to B: its next transaction is refused
    at its first statement (the token moved) and rolls back; B's work is the only one written."""
    b_working, a_tried = threading.Event(), threading.Event()
    session: list[int] = []

    def run_a(run: Any) -> Done:
        session.append(run.session_pid)
        run.check_lock()  # what every step does first: passes, the lock is held
        with run.connection() as conn:
            _terminate_lock_session(probe, run.session_pid)
            b_working.wait(60)  # meanwhile run B took the lock and works
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO fence_probe (run) VALUES ('A')")
            finally:
                a_tried.set()
        return Done()

    def run_b(run: Any) -> Done:
        with run.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO fence_probe (run) VALUES ('B')")
        b_working.set()
        assert a_tried.wait(60)
        return Done()

    a = Background(lambda: custom_run(run_a))
    _wait_for("run A's lock session gone", lambda: bool(session) and not probe.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (session[0],)
    ))  # fmt: skip
    b = custom_run(run_b)
    report_a = a.result()
    assert b.verdict.kind is Kind.DONE, b.verdict
    assert report_a.verdict.kind is Kind.INFRASTRUCTURE, report_a.verdict
    assert "lost its advisory lock" in report_a.verdict.line
    assert _rows(probe) == ["B"]
    (a_row, b_row) = _ledger(probe, "views")
    assert a_row[0] == "failed" and "lost its advisory lock" in (a_row[2] or "")
    assert b_row[0] == "completed"
    assert not probe.scalar("SELECT count(*) FROM pgtender_fences")  # B's fence went with its run


def _write(conn: Any, value: str, refused: list[BaseException]) -> None:
    """One transaction of the work writing ``value``; what refused it is kept in ``refused``, and raised."""
    try:
        with conn.transaction():
            conn.execute("INSERT INTO fence_probe (run) VALUES (%s)", (value,))
    except BaseException as exc:
        refused.append(exc)
        raise


def test_a_run_whose_session_ended_writes_nothing_more_before_anyone_takes_over(probe: Database) -> None:
    """A's lock session ends and no other run has taken the lock (or its fence) yet: A's next
    transaction is refused all the same (its session no longer answers) and rolls back."""
    refused: list[BaseException] = []

    def run_a(run: Any) -> Done:
        with run.connection() as conn:
            _terminate_lock_session(probe, run.session_pid)
            _write(conn, "A", refused)
        return Done()

    report = custom_run(run_a)
    assert refused and "lost its advisory lock (its session ended)" in str(refused[0]), refused
    assert report.verdict.kind is Kind.INFRASTRUCTURE and "lost its advisory lock" in report.verdict.line
    assert _rows(probe) == []


def test_the_run_taking_over_waits_for_the_transaction_in_flight(probe: Database) -> None:
    """A is inside a transaction when it loses its lock: B's run takes the fence only once that
    transaction committed (B's work starts after A's last write), and A's next transaction stops."""
    in_flight, b_waiting = threading.Event(), threading.Event()
    session: list[int] = []
    second: list[BaseException] = []

    def run_a(run: Any) -> Done:
        session.append(run.session_pid)
        with run.connection() as conn:
            with conn.transaction():
                conn.execute("INSERT INTO fence_probe (run) VALUES ('A: first')")
                in_flight.set()
                b_waiting.wait(60)  # the test killed A's lock session; B waits on A's fence row
                time.sleep(0.5)
                conn.execute("INSERT INTO fence_probe (run) VALUES ('A: last, at commit')")
            _write(conn, "A: after B took over", second)
        return Done()

    def run_b(run: Any) -> Done:
        with run.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO fence_probe (run) VALUES ('B: first')")
        return Done()

    a = Background(lambda: custom_run(run_a))
    assert in_flight.wait(60)
    _terminate_lock_session(probe, session[0])

    def b_waits() -> bool:
        return bool(
            probe.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND query LIKE '%%pgtender_fences%%'"
            )
        )

    def watch() -> None:
        _wait_for("run B waiting on A's fence row", b_waits, timeout=30)
        b_waiting.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        b = custom_run(run_b)
    finally:
        b_waiting.set()
    report_a = a.result()
    assert b.verdict.kind is Kind.DONE, b.verdict
    assert report_a.verdict.kind is Kind.INFRASTRUCTURE and "lost its advisory lock" in report_a.verdict.line
    # B's fence update, or A's own session found gone when B has not updated it yet (B waits for
    # A's transaction, and A's next one may begin first): either way nothing more of A is written
    assert second and "lost its advisory lock" in str(second[0]), second
    assert "took it over" in str(second[0]) or "its session ended" in str(second[0]), second
    assert _rows(probe) == ["A: first", "A: last, at commit", "B: first"]


def test_a_transaction_that_does_not_end_is_cancelled_after_the_grace(
    probe: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's transaction is stuck in a long statement: after the grace period B cancels it (its
    sessions carry A's tag while in A's transactions), A's transaction rolls back, B goes on."""
    monkeypatch.setattr(fence, "GRACE_S", 0.5)
    session: list[int] = []

    def run_a(run: Any) -> Done:
        session.append(run.session_pid)
        with run.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO fence_probe (run) VALUES ('A')")
            conn.execute("SELECT pg_sleep(30)")  # in flight when A loses its lock
        return Done()

    a = Background(lambda: custom_run(run_a))
    _wait_for("A's long statement", lambda: bool(probe.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(30)' AND state = 'active'"
        " AND application_name LIKE 'pgtender-run %%'"
    )))  # fmt: skip
    _terminate_lock_session(probe, session[0])
    b = custom_run(lambda run: Done())
    report_a = a.result(timeout=60)
    assert b.verdict.kind is Kind.DONE, b.verdict
    assert report_a.verdict.kind is Kind.INFRASTRUCTURE and "lost its advisory lock" in report_a.verdict.line
    assert _rows(probe) == []  # A's transaction was cancelled and rolled back: nothing of it stays


# --------------------------------------------------------------------------- a real rescue


BIG, SMALL = 400_000, 300


def _park(conn: psycopg.Connection[Any], months_ago: int, rows: int) -> None:
    conn.execute(
        "INSERT INTO learning_events (occurred_at, event_type, payload)"
        " SELECT date_trunc('month', now() - make_interval(months => %s), 'UTC')"
        "        + (g %% 20000) * interval '1 minute', 'parked', jsonb_build_object('n', g, 'pad', repeat('x', 40))"
        " FROM generate_series(1, %s) g",
        (months_ago, rows),
    )


def test_a_big_rescue_taken_over_midway(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: run A is moving a big month out of DEFAULT when its lock session is
    terminated; run B takes the lock at once. B waits for (or cancels) A's month, A stops at its
    next transaction, B finishes; every row is in exactly one place, B exits 0, and each ledger
    row says what its run moved (A's said 0 before)."""
    config = tmp_path / "pgtender.toml"
    config.write_text(
        '[partitions]\n[partitions.tables.learning_events]\nretention = "none"\n'
        "[partitions.tables.system_performance_metrics]\nenabled = false\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    with migrated_db.connect() as conn:
        _park(conn, 8, BIG)  # rescued first (oldest first)
        _park(conn, 7, SMALL)
        total = conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
        parked = conn.execute("SELECT count(*) FROM learning_events_default").fetchone()[0]
    assert parked == BIG + SMALL

    a = Background(lambda: run_job("partitions"))
    _wait_for("A moving the big month", lambda: bool(migrated_db.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'WITH moved AS (DELETE%%'"
    )))  # fmt: skip
    lock_pid = migrated_db.scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgtender-lock'"
    )
    _terminate_lock_session(migrated_db, lock_pid)
    b = run_job("partitions")
    report_a = a.result(timeout=300)

    assert b.verdict.kind is Kind.DONE and b.verdict.exit_code == 0, b.verdict
    assert report_a.verdict.kind is Kind.INFRASTRUCTURE and "lost its advisory lock" in report_a.verdict.line
    with migrated_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM learning_events").fetchone()[0] == total
        assert (
            conn.execute(
                "SELECT count(*) FROM learning_events_default WHERE event_type = 'parked'"
            ).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT count(DISTINCT id) FROM learning_events WHERE event_type = 'parked'"
            ).fetchone()[0]
            == BIG + SMALL
        )
    (a_row, b_row) = _ledger(migrated_db, "partitions")
    assert a_row[0] == "failed" and b_row[0] == "completed"
    assert a_row[1].get("rows_moved", 0) + b_row[1]["rows_moved"] == BIG + SMALL, (a_row[1], b_row[1])
    assert a_row[1].get("rows_moved", 0) in (0, BIG)  # its month committed whole, or was rolled back whole
