"""A fleet's alerts: one database is one target however it is reached, a down target is named and
never located (no host, port or database name in a state message, a log line or a page), and the
outage of a target pages once and resolves once whichever worker runs its jobs (the state on the
Prefect server, not on a worker's disk)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from psycopg import conninfo, sql

from flows.alerts import offline
from flows.core.errors import ConfigError
from flows.core.fleet import identity
from flows.edge.fleet_cli import select
from tests import databases, test_alerts
from tests.conftest import flow_run, human_lines
from tests.fleet_fixtures import BASE, Fleet
from tests.test_alerts import Receiver
from tests.test_fleet import run_cli

ROOT = Path(__file__).parents[1]
REPLICA = os.environ.get("PGTENDER_REPLICA_TEST_DATABASE_URL")
PRIMARY = os.environ.get("PGTENDER_CRON_TEST_DATABASE_URL")
HOOK = '\n[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "ONCALL_HOOK"\n'


def _with_host(dsn: str, host: str) -> str:
    info = conninfo.conninfo_to_dict(dsn)
    info["host"] = host
    return conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})


webhook = test_alerts.receiver  # the webhook receiver fixture, here named "webhook"


@pytest.fixture(autouse=True)
def _fresh_identities() -> Iterator[None]:
    identity.forget()
    yield
    identity.forget()


# ---------------------------------------------------------------- one database, one target


def test_a_host_alias_is_the_same_database(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """alpha by 127.0.0.1, delta by the machine's own name (no /etc/hosts entry needed, and
    nothing a URL comparison can see): the servers say they are one database — exit 2, one line
    naming both targets, nothing run anywhere."""
    if not databases.over_tcp(fleet.dbs["alpha"].server_dsn):
        pytest.skip("a host alias needs a server on TCP: the embedded server has a socket only")
    alias = socket.gethostname()
    assert alias not in ("localhost", "127.0.0.1")
    fleet.monkeypatch.setenv("FLEET_DELTA_URL", _with_host(fleet.dbs["alpha"].dsn, alias))
    fleet.write(BASE + "[targets.delta]\nurl_env = 'FLEET_DELTA_URL'\n")
    code, out, err = run_cli(["run", "health"], capsys)
    assert code == 2, (out, err)
    (line,) = human_lines(err)
    assert "targets 'alpha' and 'delta' point at the same database" in line, line
    assert alias not in line and fleet.dbs["alpha"].name not in line
    assert fleet.all_ledgers_empty()


def test_distinct_databases_and_a_down_target_pass(fleet: Fleet) -> None:
    """Three databases on one server are three targets; a target that cannot be reached is not
    identified (its run says why) and does not stop the others."""
    fleet.monkeypatch.setenv("FLEET_DELTA_URL", "postgresql://postgres@127.0.0.1:1/pgtender_nowhere")
    fleet.write(BASE + "[targets.delta]\nurl_env = 'FLEET_DELTA_URL'\n")
    assert [t.name for t in select(None)] == ["alpha", "bravo", "charlie", "delta"]
    assert identity.identify([fleet.dbs["alpha"].dsn, "postgresql://postgres@127.0.0.1:1/x"])[1] is None


@pytest.mark.real_clock
@pytest.mark.skipif(not (REPLICA and PRIMARY), reason="needs the pg_cron cluster and its standby")
def test_a_primary_and_its_standby_are_not_refused(fleet: Fleet) -> None:
    """A streaming standby shares its primary's system identifier and oids, but writes nothing: it
    is not identified, so naming both is allowed (every job skips the standby)."""
    assert PRIMARY and REPLICA
    fleet.monkeypatch.setenv("FLEET_P_URL", PRIMARY)
    fleet.monkeypatch.setenv("FLEET_S_URL", REPLICA)
    fleet.write(BASE + "[targets.p]\nurl_env = 'FLEET_P_URL'\n[targets.s]\nurl_env = 'FLEET_S_URL'\n")
    assert {"p", "s"} <= {t.name for t in select(None)}
    fleet.monkeypatch.setenv("FLEET_S_URL", _with_host(PRIMARY, socket.gethostname()))
    with pytest.raises(ConfigError, match="targets 'p' and 's' point at the same database"):
        select(None)


# ---------------------------------------------------------------- targets named, never located


def _locations(fleet: Fleet, nowhere: str) -> list[str]:
    """Patterns of where charlie (the test server) and delta (port 1) live."""
    info = conninfo.conninfo_to_dict(fleet.dbs["charlie"].dsn)
    host, port = re.escape(str(info.get("host"))), str(info.get("port") or 5432)
    return [
        re.escape(fleet.dbs["charlie"].name),
        re.escape(nowhere),
        rf"{host}:{port}\b",
        rf"{host}:1\b",
        rf'"{host}"',
        rf"\bport {port}\b",
        r"\bport 1\b",
    ]


@pytest.fixture
def shared_state_clean() -> Iterator[None]:
    """The Prefect server outlives a test: no unreachable-target state left for the next one."""
    yield
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for v in client.read_variables(limit=200):
            if v.name.startswith("pgtender_unreachable__"):
                client.delete_variable_by_name(v.name)


@pytest.mark.usefixtures("prefect_api", "shared_state_clean")
def test_a_down_target_is_named_never_located(
    fleet: Fleet,
    webhook: Receiver,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """charlie refuses connections (ALLOW_CONNECTIONS false) and delta's URL reaches a closed port:
    the health sweep's state message, every log line (pgtender's and psycopg's), the pages, and the
    CLI's lines name them and never show a host, a port or a database name."""
    nowhere = f"pgtender_nowhere_{uuid.uuid4().hex[:6]}"
    fleet.monkeypatch.setenv("FLEET_DELTA_URL", f"postgresql://postgres@127.0.0.1:1/{nowhere}")
    fleet.monkeypatch.setenv("ONCALL_HOOK", webhook.url)
    fleet.write(BASE + "[targets.delta]\nurl_env = 'FLEET_DELTA_URL'\n" + HOOK)
    admin, charlie = fleet.dbs["alpha"].server_dsn, fleet.dbs["charlie"].name
    stop = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(stop.format(sql.Identifier(charlie), sql.SQL("false")))
    caplog.set_level(logging.INFO)
    try:
        with structlog.testing.capture_logs() as logs:
            state = flow_run("health")
            cli = [
                run_cli(["run", "health", "--target", "charlie"], capsys),
                run_cli(["targets"], capsys),
                run_cli(["alerts", "status", "--target", "delta"], capsys),
            ]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(stop.format(sql.Identifier(charlie), sql.SQL("true")))
    message = state.message or ""
    assert "charlie: infrastructure error (cannot connect to target 'charlie'" in message, message
    assert "delta: infrastructure error (cannot connect to target 'delta'" in message, message
    pages = [p for p in webhook.posts if p["check"] == "job.health"]
    assert sorted(p["target"] for p in pages) == ["charlie", "delta"]
    assert all("cannot connect to target" in p["summary"] for p in pages)
    assert cli[0][0] == 3 and "cannot connect to target 'charlie'" in cli[0][2]
    assert cli[2][0] == 3 and "cannot connect to target 'delta'" in cli[2][2]
    seen = "\n".join(
        [
            message,
            json.dumps(logs, default=str),
            "\n".join(r.getMessage() for r in caplog.records),
            json.dumps(webhook.posts),
            *(out + err for _, out, err in cli),
        ]
    )
    for where in _locations(fleet, nowhere):
        found = [line for line in seen.splitlines() if re.search(where, line)]
        assert not found, (where, found[:3])


# ---------------------------------------------------------------- one page per outage, any worker


def _finished(job: str, target: Any, error: str | None, state_dir: Path, flow_run_id: str | None) -> Any:
    from flows.core.engine import Done, Finished, TargetResult
    from flows.core.errors import InfrastructureError

    result = (
        TargetResult(target=target.name, error=InfrastructureError(error))
        if error is not None
        else TargetResult(target=target.name, outcome=Done())
    )
    return Finished(job=job, target=target, result=result, state_dir=state_dir, flow_run_id=flow_run_id)


@pytest.mark.usefixtures("prefect_api", "shared_state_clean")
def test_two_workers_at_once_page_and_resolve_once(fleet: Fleet, webhook: Receiver, tmp_path: Path) -> None:
    """Two processes' worth of hooks (separate state directories, separate API clients) report the
    same outage at the same moment: the Prefect server's one-slot limit lets one of them page; the
    other finds it paged. Likewise the resolve."""
    from flows.alerts import hooks

    fleet.monkeypatch.setenv("ONCALL_HOOK", webhook.url)
    fleet.monkeypatch.setenv("FLEET_CHARLIE_URL", "postgresql://postgres@127.0.0.1:1/pgtender_gone")
    fleet.write(BASE + HOOK)
    (down,) = [t for t in select(None) if t.name == "charlie"]
    fleet.monkeypatch.setenv("FLEET_CHARLIE_URL", fleet.dbs["charlie"].dsn)
    (back,) = [t for t in select(None) if t.name == "charlie"]

    def together(target: Any, error: str | None) -> None:
        workers = [
            threading.Thread(
                target=hooks.after_run,
                args=(_finished("health", target, error, tmp_path / f"w{i}", f"run-{i}-{uuid.uuid4()}"),),
            )
            for i in range(2)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)

    together(down, "cannot connect to target 'charlie'")
    together(down, "cannot connect to target 'charlie'")
    together(back, None)
    together(back, None)
    events = [p["event"] for p in webhook.posts if p["check"] == "job.health"]
    assert events == ["page", "resolve"], webhook.posts
    assert offline.PrefectStore().get("health", "charlie") is None
    assert not list(tmp_path.glob("w*/alerts/unreachable.json"))  # nothing on the workers' disks


POOL = "pgtender"


@contextlib.contextmanager
def _worker(env: dict[str, str], cwd: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    log = (cwd / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _health_through_a_worker(target: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    run: Any = run_deployment("health/health", parameters={"target": target}, timeout=0, as_subflow=False)
    deadline = time.monotonic() + 300
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_final():
                return state
            time.sleep(1)
    pytest.fail(f"flow run {run.id} did not finish through the worker")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api", "shared_state_clean")
def test_an_outage_pages_once_whichever_worker_runs_health(
    fleet: Fleet, webhook: Receiver, tmp_path: Path
) -> None:
    """Two process workers in other directories, each with its own state directory (two machines;
    on Kubernetes an emptyDir), take turns running health on charlie while charlie refuses
    connections, then after it is back: one page and one resolve in all."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    fleet.write(BASE + HOOK)
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "ONCALL_HOOK": webhook.url}
    env["PGTENDER_CONFIG"] = str(fleet.config)
    env.pop("PGTENDER_DATABASE_URL", None)
    for name, d in fleet.dbs.items():
        env[f"FLEET_{name.upper()}_URL"] = d.dsn
    deploy = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", "health",
         "--prefect-file", "deployments/prefect.yaml"],
        cwd=ROOT, env={**env, "PREFECT_HOME": str(tmp_path / "deployer")},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
    machines = {}
    for name in ("w1", "w2"):
        machines[name] = tmp_path / name
        machines[name].mkdir()

    def on(name: str) -> contextlib.AbstractContextManager[Any]:
        own = {
            **env,
            "PGTENDER_STATE_DIR": str(machines[name] / "state"),
            "PREFECT_HOME": str(machines[name]),
        }
        return _worker(own, machines[name], name)

    admin, charlie = fleet.dbs["alpha"].server_dsn, fleet.dbs["charlie"].name
    allow = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(allow.format(sql.Identifier(charlie), sql.SQL("false")))
    try:
        states = []
        with on("w1"):
            states += [_health_through_a_worker("charlie") for _ in range(2)]
        with on("w2"):
            states.append(_health_through_a_worker("charlie"))
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(allow.format(sql.Identifier(charlie), sql.SQL("true")))
            states.append(_health_through_a_worker("charlie"))
        with on("w1"):
            states.append(_health_through_a_worker("charlie"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(allow.format(sql.Identifier(charlie), sql.SQL("true")))
    kinds = [(s.message or "").split(":")[0] for s in states]
    assert kinds[:3] == ["Infrastructure error"] * 3 and "Infrastructure error" not in kinds[3:], kinds
    events = [p["event"] for p in webhook.posts if p["check"] == "job.health" and p["target"] == "charlie"]
    assert events == ["page", "resolve"], webhook.posts
    assert not list(tmp_path.glob("w*/state/**/unreachable.json"))
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("w*/w*.log"))
    assert charlie not in logs
