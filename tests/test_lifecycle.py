"""The one engine: every registered job goes through it; one retry layer per kind of failure; a run
that loses its lock never reports success; bad input touches nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg
import psycopg.errors
import pytest
from structlog.testing import capture_logs

from flows.core import clock, db, ddl, locks
from flows.core.engine import Done, Kind, LockScope, Planning, step
from flows.core.errors import ConfigError
from flows.core.fleet.targets import Target
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.core.policy.partitions import DdlRetry
from flows.registry import REGISTRY
from tests.conftest import Database, flow_run, verdict_of
from tests.engine_fixtures import custom_run, minimal_values


def _ledger(database: Database, job: str) -> list[tuple[str, str | None]]:
    with database.connect() as conn:
        return conn.execute(
            "SELECT status, error FROM pgtender_operations WHERE job = %s ORDER BY started_at", (job,)
        ).fetchall()


@pytest.mark.usefixtures("prefect_api")
def test_every_registered_job_goes_through_the_engine(migrated_db: Database) -> None:
    """With each job's lock held by another session, every job's flow does nothing, ends Completed
    "Skipped: ..." and records a skipped run: the lock, the ledger and the final state are the
    engine's. Every job of the registry, with no case to add for a new one."""
    policy = settings.current_policy()
    with db.connect(migrated_db.dsn, autocommit=True) as holder:
        yesterday = clock.db_now(holder).date() - timedelta(days=1)
        for spec in REGISTRY.specs():
            values = minimal_values(spec.name, yesterday)
            # the lock the run will take: its plan, read on a session of the database
            target = Target(name="default", source="test", dsn=migrated_db.dsn, policy=policy)
            planning = Planning(
                conn=holder,
                target=target,
                policy=policy,
                file_policy=policy,
                now=clock.db_now(holder),
                registry=REGISTRY,
            )
            plan = spec.plan(planning, spec.parse(values))
            lock = locks.lock_name(spec.name, plan.day if spec.lock is LockScope.DAY else None)
            with locks.job_lock(holder, lock) as got:
                assert got
                state = flow_run(spec.name, **values)
            assert state.is_completed() and state.name == "Completed", (spec.name, state.name, state.message)
            verdict = verdict_of(state)
            assert verdict.kind is Kind.SKIPPED and "holds the advisory lock" in verdict.line, spec.name
            assert _ledger(migrated_db, spec.name) == [("skipped", verdict.line)], spec.name


# ---------------------------------------------------------------- one retry layer per kind


def _attempts_of(work: Any, *, retries: int = 2) -> tuple[Any, int]:
    """``work(conn, attempt)`` as a step of a job run by Prefect: (final state, attempts made)."""
    from prefect import flow

    from flows.core.engine import verdicts
    from flows.edge.orchestrator import PrefectOrchestrator

    attempts: list[int] = []

    def body(run: Any) -> str:
        attempts.append(1)
        with run.connection() as conn:
            work(conn, len(attempts))
        return "ok"

    probe_step = step("views-probe", retries=retries)(body)

    @flow(name="pgtender-retry-probe")
    def probe() -> Any:
        report = custom_run(lambda run: Done(message=probe_step(run)), orchestrator=PrefectOrchestrator())
        return verdicts.to_state(report.verdict)

    state = probe(return_state=True)
    return state, len(attempts)


@pytest.mark.usefixtures("prefect_api")
def test_a_lost_connection_is_retried_by_the_step_once_more(migrated_db: Database) -> None:
    def work(conn: psycopg.Connection[Any], attempt: int) -> None:
        if attempt == 1:  # the server ends this session (pg_terminate_backend, a restart ...)
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        conn.execute("SELECT 1")

    state, attempts = _attempts_of(work)
    assert state.is_completed() and attempts == 2


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("kind", "raise_it", "ending"),
    [
        (
            "statement_timeout",
            lambda c: c.execute("SET statement_timeout = 50; SELECT pg_sleep(2)"),
            Kind.INFRASTRUCTURE,
        ),
        ("bad input", lambda c: (_ for _ in ()).throw(ConfigError("unknown table")), Kind.BAD_INPUT),
        ("row-count mismatch", lambda c: ddl.expect_equal("moved rows", 3, 2), Kind.PROBLEMS),
        ("a bug", lambda c: c.execute("SELECT * FROM no_such_table"), Kind.INFRASTRUCTURE),
    ],
)
def test_permanent_failures_are_tried_once(
    migrated_db: Database, kind: str, raise_it: Any, ending: Kind
) -> None:
    started = time.monotonic()
    state, attempts = _attempts_of(lambda conn, _n: raise_it(conn))
    assert state.is_failed() and attempts == 1, kind
    assert verdict_of(state).kind is ending, (kind, state.message)
    assert time.monotonic() - started < 30  # no backoff pauses: it fails at once (not a timing claim)


@pytest.mark.usefixtures("prefect_api")
def test_lock_conflicts_are_retried_inside_the_transaction_only(migrated_db: Database) -> None:
    """run_locked tries the DDL ``attempts`` times; when they are exhausted that is final: the step
    is not retried on top."""
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
    assert state.is_failed() and "lock" in (state.message or "").lower()
    assert attempts == 1 and len(ddl_tries) == 3


def test_no_flow_retries() -> None:
    from flows.edge.serving import served_flow

    for job in REGISTRY.names():
        assert served_flow(job).retries == 0, job


# ---------------------------------------------------------------- losing the lock


def test_a_run_that_lost_its_lock_stops_and_never_reports_success(migrated_db: Database) -> None:
    steps: list[str] = []

    def work(run: Any) -> Done:
        steps.append("first")
        with migrated_db.connect() as admin:  # the lock session dies (pg_terminate_backend, outage)
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (run.session_pid,))
        # meanwhile another run may take the lock and work: it can
        with db.connect(migrated_db.dsn, autocommit=True) as other, locks.job_lock(other, "views") as got:
            assert got
        run.check_lock()  # what every step does before it starts
        steps.append("second")
        return Done()

    report = custom_run(work)
    assert report.verdict.kind is Kind.INFRASTRUCTURE and "lost its advisory lock" in report.verdict.line
    assert steps == ["first"]
    ((status, error),) = _ledger(migrated_db, "views")
    assert status == "failed" and "lost its advisory lock" in (error or "")


def test_a_run_that_lost_its_lock_after_its_last_step_is_not_completed(migrated_db: Database) -> None:
    def work(run: Any) -> Done:
        with migrated_db.connect() as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (run.session_pid,))
        return Done()

    assert custom_run(work).verdict.kind is Kind.INFRASTRUCTURE
    assert [s for s, _ in _ledger(migrated_db, "views")] == ["failed"]


@pytest.mark.usefixtures("prefect_api")
def test_a_flow_that_lost_its_lock_ends_as_an_infrastructure_error(migrated_db: Database) -> None:
    from prefect import flow

    from flows.core.engine import verdicts
    from flows.edge.orchestrator import PrefectOrchestrator

    @flow(name="pgtender-lost-lock")
    def lost() -> Any:
        def work(run: Any) -> Done:
            with migrated_db.connect() as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (run.session_pid,))
            return Done()

        return verdicts.to_state(custom_run(work, orchestrator=PrefectOrchestrator()).verdict)

    state = lost(return_state=True)
    assert state.is_failed() and state.name == "Failed"
    assert (state.message or "").startswith("Infrastructure error: ")
    assert "lost its advisory lock" in (state.message or "") and "Traceback" not in (state.message or "")


def test_bad_input_in_the_plan_changes_nothing_and_is_recorded_as_rejected(migrated_db: Database) -> None:
    ran: list[int] = []
    report = custom_run(
        lambda run: ran.append(1) or Done(),
        plan_error=ConfigError("day 2026-13-45 is not a valid calendar date"),
    )
    assert report.verdict.kind is Kind.BAD_INPUT and report.verdict.exit_code == 2 and ran == []
    assert _ledger(migrated_db, "views") == [("rejected", "day 2026-13-45 is not a valid calendar date")]


def test_bad_parameters_touch_no_database(migrated_db: Database) -> None:
    from tests.conftest import run_job

    report = run_job("quality", day="2026-13-45")
    assert report.verdict.kind is Kind.BAD_INPUT and "day" in report.verdict.line
    assert report.results == [] and _ledger(migrated_db, "quality") == []


def test_an_unmigrated_database_is_bad_input(empty_db: Database) -> None:
    from tests.conftest import run_job

    report = run_job("health")
    assert report.verdict.kind is Kind.BAD_INPUT and "run pgtender migrate" in report.verdict.line
