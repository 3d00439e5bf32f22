"""Issue 26.7: the adversarial trial's wrong exit codes and tracebacks — each case its documented
exit code (0 done, 1 problems, 2 bad input, 3 infrastructure) and one line, on the real PostgreSQL."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import conninfo, sql

from flows.core import clock, db, migrations
from flows.core.engine import Done, Kind, Params, PlainOrchestrator, Plan, step
from flows.core.engine import run as run_engine
from flows.edge.context import run_context
from flows.edge.fleet_cli import select
from flows.registry import REGISTRY
from tests.conftest import Database, human_lines, run_job
from tests.engine_fixtures import custom_run, minimal_values
from tests.fleet_fixtures import BASE, Fleet
from tests.partitions_fixtures import lock_held
from tests.test_cli import run_cli


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "pgtender.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))


def _one_line(err: str) -> str:
    lines = human_lines(err)
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err
    return lines[0]


def test_demo_data_on_a_database_with_data_is_bad_input(
    demo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ValueError, a 38-line traceback, exit 1."""
    before = demo_db.scalar("SELECT count(*) FROM learning_events")
    code, _, err = run_cli(["demo-data", "--days", "1", "--rows-per-day", "10"], capsys)
    assert code == 2
    line = _one_line(err)
    assert (
        line
        == "pgtender: ml_models already has rows: demo data goes into an empty schema only; nothing loaded"
    )
    assert demo_db.scalar("SELECT count(*) FROM learning_events") == before


@pytest.fixture
def unprivileged(migrated_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A role that may log in and nothing else; PGTENDER_DATABASE_URL connects as it."""
    role = f"pgtender_nopriv_{uuid.uuid4().hex[:8]}"
    with migrated_db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    monkeypatch.setenv("PGTENDER_DATABASE_URL", conninfo.make_conninfo(migrated_db.dsn, user=role))
    try:
        yield role
    finally:
        db.close_pools()
        with migrated_db.connect() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("command", [["status"], ["migrate"], ["run", "views"], ["run", "partitions"]])
def test_a_role_without_privileges_is_bad_input(
    command: list[str], unprivileged: str, migrated_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: exit 3 ("database error: permission denied ...")."""
    code, _, err = run_cli(command, capsys)
    assert code == 2, err
    line = _one_line(err)
    assert "the database role lacks a privilege: permission denied for table" in line, line
    assert not migrated_db.scalar("SELECT count(*) FROM pgtender_operations")


@pytest.mark.parametrize("job", sorted(REGISTRY.names()))
def test_every_job_on_an_unmigrated_database_says_run_migrate(job: str, empty_db: Database) -> None:
    """Before: health and capacity were exit 3 ("UndefinedTable") where partitions said migrate."""
    with empty_db.connect() as conn:
        yesterday = clock.db_now(conn).date() - timedelta(days=1)
    report = run_job(job, **minimal_values(job, yesterday))
    assert report.verdict.kind is Kind.BAD_INPUT and report.verdict.exit_code == 2, (job, report.verdict)
    assert report.verdict.line.endswith(
        f"is at schema version 0 of {migrations.newest_version()}: run pgtender migrate"
    )


def test_health_and_capacity_at_the_cli_on_an_unmigrated_database(
    empty_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    for job in ("health", "capacity"):
        code, _, err = run_cli(["run", job], capsys)
        assert code == 2 and _one_line(err).startswith(f"{job}: bad input: "), err
        assert "run pgtender migrate" in err


def test_views_schema_that_does_not_exist_is_bad_input(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: exit 0, nothing refreshed, every run."""
    _config(tmp_path, monkeypatch, '[views]\nschema_name = "analytcs"\n')
    code, _, err = run_cli(["run", "views"], capsys)
    assert code == 2
    assert (
        _one_line(err) == "views: bad input: [views] schema_name 'analytcs': no such schema in this database"
    )
    with migrated_db.connect() as conn:
        assert conn.execute("SELECT status FROM pgtender_operations WHERE job = 'views'").fetchall() == [
            ("rejected",)
        ]


def test_a_webhook_whose_variable_is_unset_is_bad_input(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: a bad channel is one line, exit 2. Before: the run went on (exit 0 or 1) and its
    pages could not go out."""
    variable = f"PGT_UNSET_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.delenv(variable, raising=False)
    _config(
        tmp_path,
        monkeypatch,
        f'[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "{variable}"\n',
    )
    code, _, err = run_cli(["run", "health"], capsys)
    assert code == 2
    assert (
        _one_line(err)
        == f"health: bad input: alerts channel 'oncall': environment variable {variable} is not set"
    )
    with migrated_db.connect() as conn:  # nothing ran: the refusal is on the ledger, as rejected
        assert conn.execute("SELECT job, status FROM pgtender_operations").fetchall() == [
            ("health", "rejected")
        ]


@pytest.mark.parametrize("command", [["serve"], ["alerts", "apply"], ["up", "--once"], ["run", "views"]])
def test_a_prefect_api_url_that_is_not_a_url_is_bad_input(
    command: list[str],
    migrated_db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: `serve`, `alerts apply` and `up` ended in httpx's traceback (exit 1)."""
    monkeypatch.setenv("PREFECT_API_URL", "not a url")
    monkeypatch.setenv("PGT_HOOK", "http://127.0.0.1:9/hook")
    _config(
        tmp_path, monkeypatch, '[[alerts.channels]]\nname = "x"\ntype = "webhook"\nurl_env = "PGT_HOOK"\n'
    )
    code, _, err = run_cli(command, capsys)
    assert code == 2
    assert _one_line(err).endswith("PREFECT_API_URL is not an http(s) URL (like http://127.0.0.1:4200/api)")


def test_connect_timeout_in_the_url_is_respected(migrated_db: Database) -> None:
    """Before: every session was opened with connect_timeout=10 whatever the URL said (a dead host
    cost 10-11 s with connect_timeout=2 in the URL)."""
    parts = conninfo.conninfo_to_dict(migrated_db.dsn)
    host = str(parts.get("host") or "127.0.0.1")
    if host.startswith("/"):  # the embedded server: its socket directory as the URL's host parameter
        where = f"/{migrated_db.name}?host={quote(host, safe='')}&"
    else:
        where = f"{host}:{parts.get('port') or 5432}/{migrated_db.name}?"
    url = f"postgresql://{parts.get('user') or 'postgres'}@{where}connect_timeout=3"
    with db.connect(url, autocommit=True) as conn:
        assert conninfo.conninfo_to_dict(conn.info.dsn)["connect_timeout"] == "3"
    with db.pooled(url) as conn:
        assert conninfo.conninfo_to_dict(conn.info.dsn)["connect_timeout"] == "3"
    with db.connect(migrated_db.dsn, autocommit=True) as conn:  # none in the URL: 10 s
        assert conninfo.conninfo_to_dict(conn.info.dsn)["connect_timeout"] == "10"


def test_a_server_that_never_answers_is_one_line_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], state_dir: Path
) -> None:
    """A listener that accepts and never speaks: the URL's connect_timeout ends the wait."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        monkeypatch.setenv(
            "PGTENDER_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/db?connect_timeout=1"
        )
        code, _, err = run_cli(["status"], capsys)
    finally:
        silent.close()
    assert code == 3
    assert "timeout expired" in _one_line(err)


@pytest.mark.usefixtures("prefect_api")
def test_a_lost_lock_inside_a_prefect_run_prints_no_traceback(
    migrated_db: Database, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: Prefect's task traceback came first. A step (a Prefect task run) finds the lock
    lost: the run ends "Infrastructure error: ... lost its advisory lock", and nothing printed
    carries a traceback."""
    from prefect import flow

    from flows.core.engine import verdicts
    from flows.edge.orchestrator import PrefectOrchestrator

    @step("views-terminate-own-lock")
    def lose(run: Any) -> None:
        with migrated_db.connect() as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (run.session_pid,))

    @step("views-after")
    def after(run: Any) -> None:
        raise AssertionError("a step after the lock was lost must not run")

    @flow(name="views")
    def lost() -> Any:
        def work(run: Any) -> Done:
            lose(run)
            after(run)
            return Done()

        return verdicts.to_state(custom_run(work, orchestrator=PrefectOrchestrator()).verdict)

    state = lost(return_state=True)
    assert state.is_failed() and (state.message or "").startswith("Infrastructure error: ")
    assert "lost its advisory lock" in (state.message or "")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, (out + err)[-4000:]


# --------------------------------------------------------------------------- the fleet


def _at_version(database: Database, version: int) -> None:
    with db.connect(database.dsn, autocommit=True) as conn:
        migrations.rollback(conn, version)


def test_fleet_migrate_goes_on_past_a_failing_target(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: it stopped at the first failing target with its error alone (exit 2, "nothing
    changed") after migrating the targets before it, and never reached those after it."""
    newest = migrations.newest_version()
    for name in ("alpha", "charlie"):
        _at_version(fleet.dbs[name], newest - 1)
    gone = conninfo.make_conninfo(fleet.dbs["bravo"].dsn, dbname=f"pgtender_gone_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("FLEET_BRAVO_URL", gone)
    code, out, err = run_cli(["migrate"], capsys)
    for name in ("alpha", "charlie"):
        with fleet.dbs[name].connect() as conn:
            assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == newest, name
    assert code == 2  # the worst: bravo's (its database does not exist)
    assert out.count("ran   up") == 2 and "target bravo: failed: cannot connect" in out
    line = _one_line(err)
    assert line.startswith("pgtender: 1 of 3 target(s) failed (bravo: cannot connect") and line.endswith(
        "done on alpha, charlie"
    )


@step("health-probe")
def _probe(run: Any) -> int:
    with run.connection() as conn:
        row = conn.execute("SELECT 1").fetchone()
    return int(row[0]) if row else 0


def test_a_target_dying_mid_sweep_is_said_as_such_quickly(
    fleet: Fleet, capfd: pytest.CaptureFixture[str]
) -> None:
    """bravo stops accepting connections in the middle of its own run. Before: 60 s of pool waits
    ("no database connection ... within 30 s"), raw psycopg.pool warnings, and the run blamed on
    the advisory lock. Now: its connect error, one line, no pool warning; the others are done."""
    fleet.write(BASE.replace("concurrency = 2", "concurrency = 1"))
    admin = fleet.dbs["alpha"].server_dsn
    bravo = fleet.dbs["bravo"].name

    def work(run: Any) -> Done:
        _probe(run)  # the pool holds a connection to the target now
        if run.target.name == "bravo":
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(bravo))
                )
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (bravo,)
                )
        _probe(run)
        return Done()

    spec = replace(REGISTRY.get("health"), plan=lambda _planning, _params: Plan(work=work))
    try:
        report = run_engine(spec, Params(), select(None), run_context(PlainOrchestrator()))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(bravo)))
    by = {r.target: r for r in report.results}
    assert by["alpha"].verdict.kind is Kind.DONE and by["charlie"].verdict.kind is Kind.DONE
    line = by["bravo"].verdict.line
    assert by["bravo"].verdict.kind is Kind.INFRASTRUCTURE, line
    assert "not currently accepting connections" in line and "advisory lock" not in line, line
    assert "within 30 s" not in line  # the pool's timeout was not what ended it
    out, err = capfd.readouterr()
    assert "psycopg.pool" not in out + err and "error connecting in" not in out + err


def test_partitions_beside_a_lock_on_default_says_what_it_did(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session holds learning_events' DEFAULT: that table fails after its lock retries,
    while system_performance_metrics gets its premake partitions. Before: the line said "nothing
    was changed". Now it says what the run did."""
    _config(
        tmp_path,
        monkeypatch,
        "[partitions]\nlock_timeout_ms = 100\nattempts = 2\nbackoff_base_ms = 10\nbackoff_max_ms = 20\n"
        '[partitions.tables.learning_events]\nretention = "none"\n'
        '[partitions.tables.system_performance_metrics]\npremake = 5\nretention = "none"\n',
    )
    with migrated_db.connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type)"
            " VALUES (date_trunc('month', now() - interval '7 months', 'UTC'), 'parked')"
        )
    with lock_held(migrated_db.dsn, "learning_events_default"):
        report = run_job("partitions")
    verdict = report.verdict
    assert verdict.kind is Kind.INFRASTRUCTURE and verdict.exit_code == 3, verdict
    assert "learning_events" in verdict.line and "nothing was changed" not in verdict.line, verdict.line
    created = migrated_db.scalar(
        "SELECT (counts->>'partitions_created')::int FROM pgtender_operations WHERE job = 'partitions'"
    )
    assert created >= 3  # months +3 .. +5 of system_performance_metrics
    assert f"done meanwhile: {created} partition(s) created" in verdict.line, verdict.line
