"""Tending a fleet: targets in the policy file, every job over every target in one flow run, each
target's lock, ledger and results in its own database, one target down stops no other; bad input
(an unknown target, a missing URL, two targets on one database, an unknown override key, a replica
named for a writing job) is exit 2 with nothing changed anywhere.

Three target databases are created on the test server (CREATE DATABASE, cloned from the demo
template); the replica cases use the streaming standby of the pg_cron cluster when it is there.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from prefect import flow
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from psycopg import conninfo, sql

from flows.core import clock, db, locks
from flows.core.engine import Kind, Params, Plan
from flows.core.errors import ConfigError
from flows.edge.cli import main
from flows.edge.fleet_cli import select
from flows.health import health_run
from flows.registry import REGISTRY
from tests.conftest import flow_run, human_lines, verdict_of
from tests.engine_fixtures import minimal_values
from tests.fleet_fixtures import BASE, NAMES, Fleet

REPLICA = os.environ.get("PGTENDER_REPLICA_TEST_DATABASE_URL")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


# ---------------------------------------------------------------- the policy file


def test_per_target_overrides_and_their_validation(fleet: Fleet) -> None:
    chosen = {t.name: t for t in select(None)}
    assert sorted(chosen) == list(NAMES)
    assert chosen["alpha"].policy.health.event_lag_max_seconds == 300
    assert chosen["bravo"].policy.health.event_lag_max_seconds == 9999
    assert chosen["bravo"].policy.report.timezone == "America/New_York"
    assert chosen["bravo"].policy.report.recipients == ("bravo-oncall@example.com",)
    # overrides merge key by key: bravo keeps the file's other health thresholds and default tables
    assert chosen["bravo"].policy.health.quality_score_min_pct == 90.0
    assert "learning_events" in chosen["bravo"].policy.partitions.tables
    # a target carries its own policy and database
    assert chosen["bravo"].dsn == fleet.dbs["bravo"].dsn
    assert fleet.dbs["bravo"].name not in repr(chosen["bravo"])  # the URL is never in its repr

    fleet.write(BASE + "[targets.charlie.health]\nno_such_threshold = 1\n")
    with pytest.raises(ConfigError, match=r"targets\.charlie\.health\.no_such_threshold"):
        select(None)
    fleet.write(BASE + "[targets.delta]\nurl = 'postgresql://x@y/z'\n")
    with pytest.raises(ConfigError, match=r"targets\.delta\.url"):
        select(None)
    fleet.write(BASE + "[targets.delta]\nurl_env = 'A'\nurl_secret = 'b'\n")
    with pytest.raises(ConfigError, match="exactly one of url_env"):
        select(None)


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("unknown", "unknown target 'nope'"),
        ("missing-env", "environment variable FLEET_DELTA_URL is not set"),
        ("duplicate", "point at the same database"),
        ("override", "targets.bravo.partitions.tables.learning_events.premake"),
        ("missing-secret", "Prefect Secret block 'no-such-block' does not exist"),
    ],
)
def test_bad_input_is_exit_2_one_line_nothing_changed(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], case: str, expect: str
) -> None:
    args = ["run", "health"]
    if case == "unknown":
        args += ["--target", "nope"]
    elif case == "missing-env":
        fleet.write(BASE + "[targets.delta]\nurl_env = 'FLEET_DELTA_URL'\n")
    elif case == "duplicate":
        # the same database spelled differently (localhost vs 127.0.0.1, explicit default port)
        same = fleet.dbs["alpha"].dsn.replace("127.0.0.1", "localhost")
        fleet.monkeypatch.setenv("FLEET_DELTA_URL", same)
        fleet.write(BASE + "[targets.delta]\nurl_env = 'FLEET_DELTA_URL'\n")
    elif case == "override":
        fleet.write(BASE + "[targets.bravo.partitions.tables.learning_events]\npremake = 'three'\n")
    elif case == "missing-secret":
        fleet.write(BASE + "[targets.delta]\nurl_secret = 'no-such-block'\n")
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    lines = human_lines(err)
    assert len(lines) == 1 and expect in lines[0], err
    assert fleet.all_ledgers_empty()
    assert "postgresql://" not in err  # a URL is never shown (only host:port/database)


# ---------------------------------------------------------------- sweeps


@pytest.mark.usefixtures("prefect_api")
def test_one_sweep_runs_every_target_in_its_own_database(fleet: Fleet) -> None:
    state = flow_run("health")
    data = state.result(raise_on_failure=False) if state.is_completed() else None
    assert verdict_of(state).kind in (Kind.DONE, Kind.PROBLEMS), state.message
    flow_runs = set()
    for name, d in fleet.dbs.items():
        rows = fleet.ledger(name, "health")
        assert len(rows) == 1 and rows[0][0] in ("completed", "problems"), (name, rows)
        flow_runs.add(rows[0][1])
        assert d.scalar("SELECT count(*) FROM data_quality_checks WHERE flow_run_id = %s", (rows[0][1],)) > 0
        assert name in (state.message or "")
    assert len(flow_runs) == 1, "one flow run swept every target"
    # bravo's override reached its probe: the event lag threshold recorded there is its own
    with fleet.dbs["bravo"].connect() as conn:
        row = conn.execute(
            "SELECT threshold FROM data_quality_checks WHERE check_name LIKE %s"
            " AND is_current ORDER BY checked_at DESC LIMIT 1",
            ("%event_lag%",),
        ).fetchone()
    assert row is not None and float(row[0]) == 9999
    if data is not None:
        assert sorted(data["targets"]) == list(NAMES)


@pytest.mark.usefixtures("prefect_api")
def test_a_sweep_leaves_no_connection_open_on_its_targets(fleet: Fleet) -> None:
    """Each target's pool is closed when that target's run ends (``db.release``): N targets must
    not keep N pools of idle connections until the flow-run process exits (a 50-target sweep hit
    max_connections)."""
    state = flow_run("partitions")
    assert verdict_of(state).kind in (Kind.DONE, Kind.PROBLEMS), state.message
    assert all(rows for rows in (fleet.ledger(name, "partitions") for name in NAMES)), "every target ran"
    left: dict[str, int] = {}
    for _ in range(50):  # a closed client's backend leaves pg_stat_activity a moment later
        left = {
            name: d.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (d.name,),
            )
            for name, d in fleet.dbs.items()
        }
        if not any(left.values()):
            break
        time.sleep(0.1)
    assert not any(left.values()), left


@pytest.mark.usefixtures("prefect_api")
def test_target_down_mid_sweep_stops_no_other_and_is_named(fleet: Fleet) -> None:
    """concurrency 1, order alpha, bravo, charlie: while alpha runs, charlie stops accepting
    connections; alpha and bravo complete, charlie is an error named in the final state (exit 3)."""
    fleet.write(BASE.replace("concurrency = 2", "concurrency = 1"))
    admin = fleet.dbs["alpha"].server_dsn
    charlie = fleet.dbs["charlie"].name

    def stop_charlie() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(charlie)))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (charlie,)
            )

    def plan(planning: Any, _params: Params) -> Plan:
        if planning.target.name == "alpha":
            stop_charlie()
        return Plan(work=health_run)

    @flow(name="health")
    def sweep_flow() -> Any:
        from dataclasses import replace

        from flows.core.engine import run, verdicts
        from flows.edge.context import run_context
        from flows.edge.orchestrator import PrefectOrchestrator

        ctx = run_context(PrefectOrchestrator())
        spec = replace(REGISTRY.get("health"), plan=plan)
        return verdicts.to_state(run(spec, Params(), select(None), ctx).verdict)

    try:
        state = sweep_flow(return_state=True)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(charlie)))
    assert state.is_failed() and verdict_of(state).kind is Kind.INFRASTRUCTURE, (state.name, state.message)
    assert "charlie: infrastructure error" in (state.message or "")
    assert "alpha: " in (state.message or "") and "bravo: " in (state.message or "")
    for name in ("alpha", "bravo"):
        assert [r[0] for r in fleet.ledger(name, "health")] in (["completed"], ["problems"]), name
    assert fleet.ledger("charlie", "health") == []
    assert fleet.dbs["charlie"].name not in (state.message or "") or "cannot connect" in (state.message or "")


@pytest.mark.usefixtures("prefect_api")
def test_locks_are_per_job_and_target(fleet: Fleet) -> None:
    """alpha's views lock held elsewhere: alpha's refresh is skipped, bravo's and charlie's run."""
    with (
        db.connect(fleet.dbs["alpha"].dsn, autocommit=True) as holder,
        locks.job_lock(holder, locks.lock_name("views")) as got,
    ):
        assert got
        state = flow_run("views")
    assert state.is_completed(), state.message
    assert "alpha: skipped" in (state.message or "")
    assert [r[0] for r in fleet.ledger("alpha", "views")] == ["skipped"]
    for name in ("bravo", "charlie"):
        assert [r[0] for r in fleet.ledger(name, "views")] == ["completed"], name


@pytest.mark.usefixtures("prefect_api")
def test_cli_target_option_and_worst_exit_code(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["run", "views", "--target", "bravo"], capsys)
    assert code == 0, err
    assert [r[0] for r in fleet.ledger("bravo", "views")] == ["completed"]
    assert fleet.ledger("alpha", "views") == [] and fleet.ledger("charlie", "views") == []
    # a fleet sweep whose one target cannot connect: the worst (3) is the exit code
    fleet.monkeypatch.setenv("FLEET_CHARLIE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    code, out, err = run_cli(["run", "capacity"], capsys)
    assert code == 3, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("capacity: infrastructure error: capacity over 3 target(s)"), err
    assert "charlie: infrastructure error" in last, err
    for name in ("alpha", "bravo"):
        assert [r[0] for r in fleet.ledger(name, "capacity")] == ["completed"], name


@pytest.mark.usefixtures("prefect_api")
def test_every_job_sweeps_every_target(fleet: Fleet) -> None:
    """Each registered flow, started with no target, runs once on every target, all in one flow
    run; each target's ledger row is in its own database and the fleet artifact names them all."""
    from prefect.client.orchestration import get_client

    yesterday = clock.today() - timedelta(days=1)
    for job in REGISTRY.names():  # every job, no case to add for a new one
        params = minimal_values(job, yesterday)
        if job == "backfill":
            params["jobs"] = ["capacity"]
        state = flow_run(job, **params)
        assert verdict_of(state).kind in (Kind.DONE, Kind.PROBLEMS), (job, state.name, state.message)
        runs = set()
        for name in NAMES:
            rows = fleet.ledger(name, job)
            assert [r[0] for r in rows][-1:] in (["completed"], ["problems"]), (job, name, rows)
            runs.add(rows[-1][1])
            assert f"{name}: " in (state.message or ""), (job, state.message)
        assert len(runs) == 1, (job, "one flow run for the whole fleet")
        with get_client(sync_client=True) as client:
            artifact = client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(
                    key=ArtifactCollectionFilterKey(any_=[f"fleet-{job}"])
                )
            )
        assert artifact and str(artifact[0].flow_run_id) == str(next(iter(runs))), job
        shown = json.dumps(artifact[0].data)
        assert all(name in shown for name in NAMES) and "postgresql://" not in shown


@pytest.mark.usefixtures("prefect_api")
def test_weekly_report_over_the_fleet(fleet: Fleet, tmp_path: Any) -> None:
    """One fleet email (a summary row per target, then each target's report) to the file's
    recipients; bravo, with recipients of its own, also gets its own report; every target's report
    is kept under its own state directory."""
    import email
    import email.policy
    import socket

    from aiosmtpd.controller import Controller

    received: list[tuple[list[str], Any]] = []

    class Inbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            received.append((list(envelope.rcpt_tos), msg))
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    fleet.monkeypatch.setenv("PGTENDER_SMTP_HOST", "127.0.0.1")
    fleet.monkeypatch.setenv("PGTENDER_SMTP_PORT", str(port))
    fleet.monkeypatch.setenv("PGTENDER_STATE_DIR", str(tmp_path))
    fleet.write(BASE + '[report]\nrecipients = ["fleet@example.com"]\n')
    try:
        state = flow_run("report")
    finally:
        controller.stop()
    assert state.is_completed(), state.message
    by_rcpt = {tuple(r): m for r, m in received}
    assert sorted(by_rcpt) == [("bravo-oncall@example.com",), ("fleet@example.com",)], sorted(by_rcpt)
    fleet_text = by_rcpt[("fleet@example.com",)].get_body(preferencelist=("plain",)).get_content()
    summary, _, details = fleet_text.partition("==== alpha ====")
    for name in NAMES:
        assert any(line.startswith(name) for line in summary.splitlines()), summary
        assert f"==== {name} ====" in fleet_text
    assert "pass rate" in summary and details.strip()
    (fleet_file,) = tmp_path.glob("reports/*/*-fleet/fleet.txt")
    assert fleet_file.read_text(encoding="utf-8") == fleet_text.replace("\r\n", "\n")
    for name in NAMES:
        assert list(tmp_path.glob(f"targets/{name}/reports/*/*/report.html")), name


def test_up_migrates_every_target_and_goes_on_past_one_down(
    fleet: Fleet, server_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.edge.fleet_cli import migrate_fleet
    from tests.conftest import _create_db, _drop_db

    empty = f"pgtender_fleet_empty_{uuid.uuid4().hex[:8]}"
    fleet.monkeypatch.setenv("FLEET_CHARLIE_URL", _create_db(server_dsn, empty))
    fleet.monkeypatch.setenv("FLEET_BRAVO_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    try:
        lines: list[str] = []
        assert migrate_fleet(lines.append) == 1
        assert lines[0].startswith("target alpha: 0 migration(s) applied")
        assert lines[1].startswith("target bravo: not prepared: cannot connect")
        assert lines[2].startswith("target charlie: ") and not lines[2].startswith("target charlie: 0 ")
        with psycopg.connect(conninfo.make_conninfo(server_dsn, dbname=empty)) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] > 0
    finally:
        db.close_pools()
        _drop_db(server_dsn, empty)


# ---------------------------------------------------------------- pgtender targets


def test_targets_command_lists_and_checks_each(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["targets"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["target", "source", "reachable", "role"]
    for name in NAMES:
        row = next(line for line in lines if line.startswith(name))
        assert f"env:FLEET_{name.upper()}_URL" in row and " yes " in row and "primary" in row
    for d in fleet.dbs.values():
        assert d.name not in out
    # one target unmigrated: a finding (exit 1); one unreachable: exit 3
    with fleet.dbs["charlie"].connect() as conn:
        conn.execute(
            "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)"
        )
    code, out, err = run_cli(["targets"], capsys)
    assert code == 1 and "charlie" in err, (out, err)
    fleet.monkeypatch.setenv("FLEET_BRAVO_URL", "postgresql://postgres:s3cret-pw@127.0.0.1:1/nothing")
    code, out, err = run_cli(["targets"], capsys)
    assert code == 3 and "bravo" in err, (out, err)
    assert "s3cret-pw" not in out + err


@pytest.mark.usefixtures("prefect_api")
def test_url_from_a_prefect_secret_block(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.blocks.system import Secret

    block = f"pgtender-fleet-{uuid.uuid4().hex[:8]}"
    Secret(value=fleet.dbs["charlie"].dsn).save(block)
    fleet.write(BASE.replace('url_env = "FLEET_CHARLIE_URL"', f'url_secret = "{block}"'))
    fleet.monkeypatch.delenv("FLEET_CHARLIE_URL")
    chosen = select("charlie")
    assert chosen[0].source == f"secret:{block}" and chosen[0].dsn == fleet.dbs["charlie"].dsn
    code, _out, err = run_cli(["run", "views", "--target", "charlie"], capsys)
    assert code == 0, err
    assert [r[0] for r in fleet.ledger("charlie", "views")] == ["completed"]


# ---------------------------------------------------------------- replicas


def _replica_fleet(fleet: Fleet) -> Callable[[], None]:
    assert REPLICA is not None
    fleet.monkeypatch.setenv("FLEET_STANDBY_URL", REPLICA)
    fleet.write(BASE + "[targets.standby]\nurl_env = 'FLEET_STANDBY_URL'\n")
    return lambda: None


@pytest.mark.real_clock
@pytest.mark.skipif(
    REPLICA is None, reason="needs PGTENDER_REPLICA_TEST_DATABASE_URL (.ci/setup-pg-replica.sh)"
)
@pytest.mark.usefixtures("prefect_api")
def test_replica_target_refused_by_name_skipped_in_a_sweep(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    _replica_fleet(fleet)
    code, out, err = run_cli(["run", "partitions", "--target", "standby"], capsys)
    assert code == 2 and "'standby' is a replica" in err and len(human_lines(err)) == 1, err
    code, out, err = run_cli(["targets"], capsys)
    row = next(line for line in out.splitlines() if line.startswith("standby"))
    assert "replica" in row
    code, out, err = run_cli(["run", "views"], capsys)
    assert code == 0, err
    assert "standby: skipped" in out + err or "standby" in out
    for name in NAMES:
        assert [r[0] for r in fleet.ledger(name, "views")] == ["completed"], name


@pytest.mark.usefixtures("prefect_api")
def test_late_run_guard_works_per_job_and_target() -> None:
    """After downtime the guard keeps one catch-up run per (deployment, target): the sweeps' overdue
    runs (no target) collapse to one, and so do one target's own, separately."""
    from datetime import UTC, datetime

    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    from flows.edge import serving

    deployment_id = serving.deployment_for("health").apply()
    now = datetime.now(UTC).replace(microsecond=0)  # Prefect's clock: its test server's real one
    planted: dict[str, list[Any]] = {"sweep": [], "bravo": []}
    with get_client(sync_client=True) as client:
        for i in range(4):
            at = now - timedelta(minutes=20 + 5 * i)
            planted["sweep"].append(
                client.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=at))
            )
            planted["bravo"].append(
                client.create_flow_run_from_deployment(
                    deployment_id, parameters={"target": "bravo"}, state=Scheduled(scheduled_time=at)
                )
            )
        try:
            serving.collapse_late_runs(client, {"health": deployment_id}, now=now)
            for group, runs in planted.items():
                states = [client.read_flow_run(r.id).state for r in runs]
                left = [r for r, s in zip(runs, states, strict=True) if s is not None and s.is_scheduled()]
                assert [r.id for r in left] == [runs[0].id], group  # the newest of its group, only
        finally:  # the session's Prefect server is shared: other tests count this deployment's runs
            for runs in planted.values():
                for r in runs:
                    client.delete_flow_run(r.id)
