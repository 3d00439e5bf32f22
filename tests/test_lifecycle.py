"""The one run lifecycle: every flow goes through it; one retry layer per kind of failure; a run
that loses its lock never reports success."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg
import psycopg.errors
import pytest
from structlog.testing import capture_logs

from flows import backfill
from flows.core import clock, db, ddl, lifecycle, locks, runtime
from flows.core.errors import ConfigError
from flows.core.jobs import JOBS, get_flow
from flows.core.logs import get_logger
from flows.core.policy.partitions import DdlRetry
from tests.conftest import Database


def _ledger(database: Database, job: str) -> list[tuple[str, str | None]]:
    with database.connect() as conn:
        return conn.execute(
            "SELECT status, error FROM pgtender_operations WHERE job = %s ORDER BY started_at", (job,)
        ).fetchall()


@pytest.mark.usefixtures("prefect_api")
def test_every_registered_flow_goes_through_the_lifecycle(migrated_db: Database) -> None:
    """With each job's lock held by another session, every flow does nothing, ends "Skipped" and
    records a skipped run: the lock, the ledger and the final state are the lifecycle's."""
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    request = backfill.validate(yesterday, yesterday, None)
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "capacity": ({}, locks.lock_name("capacity")),
        "health": ({}, locks.lock_name("health")),
        "partitions": ({"dry_run": True}, locks.lock_name("partitions")),
        "retention": ({"dry_run": True}, locks.lock_name("retention")),
        "views": ({"dry_run": True}, locks.lock_name("views")),
        "quality": ({"day": yesterday}, locks.lock_name("quality", yesterday)),
        "report": ({"dry_run": True}, locks.lock_name("report")),
        "backfill": ({"start": yesterday, "end": yesterday}, locks.lock_name("backfill", request.key)),
    }
    assert sorted(cases) == sorted(JOBS), "a new job needs a case here"
    with db.connect(migrated_db.dsn, autocommit=True) as holder:
        for job, (params, lock) in cases.items():
            with locks.job_lock(holder, lock) as got:
                assert got
                state = get_flow(job)(**params, return_state=True)
            assert state.is_completed() and state.name == "Skipped", (job, state.name, state.message)
            assert "holds the advisory lock" in (state.message or ""), job
            assert _ledger(migrated_db, job) == [("skipped", state.message)], job


# ---------------------------------------------------------------- one retry layer per kind


def _attempts_of(work: Any, *, retries: int = 2) -> tuple[Any, int]:
    """Run ``work(conn)`` as a pgtender task inside a flow; (final state, attempts made)."""
    from prefect import flow

    attempts: list[int] = []

    @runtime.db_task("views-probe", "views", retries=retries)
    def step() -> str:
        attempts.append(1)
        with runtime.connection() as conn:
            work(conn, len(attempts))
        return "ok"

    @flow(name="pgtender-retry-probe")
    def probe() -> str:
        return step()

    state = probe(return_state=True)
    return state, len(attempts)


@pytest.mark.usefixtures("prefect_api")
def test_a_lost_connection_is_retried_by_the_task_once_more(migrated_db: Database) -> None:
    def work(conn: psycopg.Connection[Any], attempt: int) -> None:
        if attempt == 1:  # the server ends this session (pg_terminate_backend, a restart ...)
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        conn.execute("SELECT 1")

    state, attempts = _attempts_of(work)
    assert state.is_completed() and attempts == 2


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("kind", "raise_it"),
    [
        ("statement_timeout", lambda c: c.execute("SET statement_timeout = 50; SELECT pg_sleep(2)")),
        ("bad input", lambda c: (_ for _ in ()).throw(ConfigError("unknown table"))),
        ("row-count mismatch", lambda c: ddl.expect_equal("moved rows", 3, 2)),
        ("a bug", lambda c: c.execute("SELECT * FROM no_such_table")),
    ],
)
def test_permanent_failures_are_tried_once(migrated_db: Database, kind: str, raise_it: Any) -> None:
    started = time.monotonic()
    state, attempts = _attempts_of(lambda conn, _n: raise_it(conn))
    assert state.is_failed() and attempts == 1, kind
    assert time.monotonic() - started < 30  # no backoff pauses: it fails at once (not a timing claim)


@pytest.mark.usefixtures("prefect_api")
def test_lock_conflicts_are_retried_inside_the_transaction_only(migrated_db: Database) -> None:
    """run_locked tries the DDL ``attempts`` times; when they are exhausted that is final: the task
    is not retried on top (before: 5 DDL tries x 2 task tries x 3 flow tries)."""
    retry = DdlRetry(lock_timeout_ms=50, attempts=3, backoff_base_ms=1, backoff_max_ms=5)
    ddl_tries: list[int] = []

    def work(conn: psycopg.Connection[Any], _n: int) -> None:
        def alter(c: psycopg.Connection[Any]) -> None:
            ddl_tries.append(1)
            c.execute("ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS probe int")

        with capture_logs():
            ddl.run_locked(conn, alter, retry=retry, what="probe", log=get_logger())

    with db.connect(migrated_db.dsn, autocommit=True) as holder, holder.transaction():
        holder.execute("LOCK TABLE ml_models IN ACCESS EXCLUSIVE MODE")
        state, attempts = _attempts_of(work)
    assert state.is_failed() and isinstance(state.result(raise_on_failure=False), ddl.LockRetriesExhausted)
    assert attempts == 1 and len(ddl_tries) == 3


def test_no_flow_retries() -> None:
    from flows.edge.serving import served_flow

    for job in JOBS:
        assert served_flow(job).retries == 0, job


# ---------------------------------------------------------------- losing the lock


def test_a_run_that_lost_its_lock_stops_and_never_reports_success(migrated_db: Database) -> None:
    steps: list[str] = []

    def work(run: lifecycle.Run) -> lifecycle.Done:
        steps.append("first")
        with migrated_db.connect() as admin:  # the lock session dies (pg_terminate_backend, outage)
            admin.execute("SELECT pg_terminate_backend(%s)", (run.lock_pid,))
        # meanwhile another run may take the lock and work: it can
        with db.connect(migrated_db.dsn, autocommit=True) as other, locks.job_lock(other, "views") as got:
            assert got
        lifecycle.checkpoint()  # what every pgtender task does before it starts
        steps.append("second")
        return lifecycle.Done()

    with pytest.raises(lifecycle.LockLost, match="lost its advisory lock"):
        lifecycle.execute("views", work)
    assert steps == ["first"]
    ((status, error),) = _ledger(migrated_db, "views")
    assert status == "failed" and "LockLost" in (error or "")


def test_a_run_that_lost_its_lock_after_its_last_step_is_not_completed(migrated_db: Database) -> None:
    def work(run: lifecycle.Run) -> lifecycle.Done:
        with migrated_db.connect() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (run.lock_pid,))
        return lifecycle.Done()

    with pytest.raises(lifecycle.LockLost):
        lifecycle.execute("views", work)
    assert [s for s, _ in _ledger(migrated_db, "views")] == ["failed"]


@pytest.mark.usefixtures("prefect_api")
def test_a_flow_that_lost_its_lock_ends_as_an_infrastructure_error(migrated_db: Database) -> None:
    from prefect import flow

    @flow(name="pgtender-lost-lock")
    def lost() -> Any:
        def work(run: lifecycle.Run) -> lifecycle.Done:
            with migrated_db.connect() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (run.lock_pid,))
            return lifecycle.Done()

        return lifecycle.run_flow("views", work)

    state = lost(return_state=True)
    assert state.is_failed() and state.name == "Infrastructure error"
    assert "lost its advisory lock" in (state.message or "") and "Traceback" not in (state.message or "")


def test_bad_input_fails_before_anything_is_touched(migrated_db: Database) -> None:
    def refuse() -> None:
        raise ConfigError("day 2026-13-45 is not a valid calendar date")

    with pytest.raises(ConfigError):
        lifecycle.execute("quality", lambda run: lifecycle.Done(), validate=refuse)
    assert _ledger(migrated_db, "quality") == []
