"""Work pools for real: `prefect deploy --all` from the repository, two process workers started in
another directory (as on other machines), every job run through them against a fleet of three
target databases; the results land in each target's own tables.

This is the pull-step fix proven: the deployments name their flows by module path and carry no
directory of the deployer, so a worker anywhere runs them from the installed pgtender.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from flows.core import clock, db, locks
from flows.core.engine import Kind
from flows.registry import REGISTRY
from tests.conftest import verdict_of
from tests.engine_fixtures import minimal_values
from tests.fleet_fixtures import BASE, NAMES, Fleet

ROOT = Path(__file__).parents[1]
REPLICA = os.environ.get("PGTENDER_REPLICA_TEST_DATABASE_URL")
POOL = "pgtender"  # the pool deployments/prefect.yaml names


def _env(fleet: Fleet, home: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": str(home)}
    env["PGTENDER_CONFIG"] = str(fleet.config)
    for name, d in fleet.dbs.items():
        env[f"FLEET_{name.upper()}_URL"] = d.dsn
    env.pop("PGTENDER_DATABASE_URL", None)
    # Data Docs would import Great Expectations (10+ s) in the quality run's process; they are
    # proven in-process (tests/test_quality.py, tests/test_data_docs_offline.py).
    policy = BASE + "[quality]\ndata_docs = false\n"
    if REPLICA:  # the streaming replica as a fourth target: every sweep skips it
        env["FLEET_STANDBY_URL"] = REPLICA
        policy += "[targets.standby]\nurl_env = 'FLEET_STANDBY_URL'\n"
    fleet.write(policy)
    return env


@contextlib.contextmanager
def _workers(env: dict[str, str], cwd: Path, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    try:
        for i in range(count):
            log = (cwd / f"worker-{i}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", f"w{i}"],
                    cwd=cwd,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield procs
    finally:
        for proc in procs:  # only the workers this test started, by their process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.real_clock  # the streaming replica (a target here) is on the pg_cron cluster's clock
@pytest.mark.usefixtures("prefect_api")
def test_jobs_run_through_two_workers_elsewhere_on_every_target(
    fleet: Fleet, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    def forget_deployments() -> None:
        """The session's server is shared: a later test's `pgtender run` must not find these
        deployments (its run would wait for a worker that is gone)."""
        with get_client(sync_client=True) as client:
            for job in REGISTRY.names():
                with contextlib.suppress(ObjectNotFound):
                    client.delete_deployment(client.read_deployment_by_name(f"{job}/{job}").id)

    request.addfinalizer(forget_deployments)

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    env = _env(fleet, tmp_path / "prefect-home")
    deploy = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            "deployments/prefect.yaml",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
    with get_client(sync_client=True) as client:
        for job in REGISTRY.names():
            deployed = client.read_deployment_by_name(f"{job}/{job}")
            assert deployed.pull_steps in (None, []), (job, deployed.pull_steps)
            assert str(ROOT) not in str(deployed.model_dump()), job  # no path of the deployer's machine

    elsewhere = tmp_path / "another-machine"
    elsewhere.mkdir()
    yesterday = clock.today() - timedelta(days=1)
    cases: dict[str, dict[str, Any]] = {job: minimal_values(job, yesterday) for job in REGISTRY.names()}
    cases["views"] = {"target": "bravo"}
    cases["backfill"]["jobs"] = ["capacity"]
    runs: dict[str, Any] = {}

    def submit_and_wait(jobs: list[str]) -> None:
        for job in jobs:
            name = f"{job}/{job}"
            runs[job] = run_deployment(name, parameters=cases[job], timeout=0, as_subflow=False)
        deadline = time.monotonic() + 600
        pending = set(jobs)
        with get_client(sync_client=True) as client:
            while pending and time.monotonic() < deadline:
                for job in list(pending):
                    state = client.read_flow_run(runs[job].id).state
                    if state is not None and state.is_final():
                        pending.discard(job)
                time.sleep(1)
        assert not pending, f"not finished through the workers: {sorted(pending)}"

    with _workers(env, elsewhere, 2):
        # the backfill re-runs capacity, whose per-target lock would make a concurrent capacity
        # run skip (as it should): it goes after the others
        submit_and_wait([j for j in cases if j != "backfill"])
        submit_and_wait(["backfill"])
        with get_client(sync_client=True) as client:
            finished = {job: client.read_flow_run(run.id) for job, run in runs.items()}
        # concurrency per (job, target) through the workers: alpha's views lock is held elsewhere,
        # so alpha's refresh skips while bravo's and charlie's run; and charlie stops accepting
        # connections: the sweep completes the others and names charlie (Infrastructure error)
        admin = fleet.dbs["alpha"].server_dsn
        charlie = fleet.dbs["charlie"].name
        with (
            db.connect(fleet.dbs["alpha"].dsn, autocommit=True) as holder,
            locks.job_lock(holder, locks.lock_name("views")) as got,
            psycopg.connect(admin, autocommit=True) as conn,
        ):
            assert got
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(charlie)))
            try:
                runs["views-sweep"] = run_deployment(
                    "views/views", parameters={}, timeout=0, as_subflow=False
                )
                deadline = time.monotonic() + 300
                with get_client(sync_client=True) as client:
                    while time.monotonic() < deadline:
                        swept = client.read_flow_run(runs["views-sweep"].id)
                        if swept.state is not None and swept.state.is_final():
                            break
                        time.sleep(1)
            finally:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(charlie))
                )
    assert swept.state is not None and verdict_of(swept.state).kind is Kind.INFRASTRUCTURE, swept.state
    message = swept.state.message or ""
    assert "alpha: skipped" in message and "bravo: done" in message, message
    assert "charlie: infrastructure error" in message, message
    with fleet.dbs["bravo"].connect() as conn:
        assert conn.execute(
            "SELECT status FROM pgtender_operations WHERE job = 'views' AND flow_run_id = %s", (swept.id,)
        ).fetchall() == [("completed",)]
    logs = "".join(p.read_text(errors="replace") for p in elsewhere.glob("worker-*.log"))
    assert "FileNotFoundError" not in logs
    assert {str(r.work_pool_name) for r in finished.values()} == {POOL}
    for job, run in finished.items():
        assert run.state is not None and verdict_of(run.state).kind in (Kind.DONE, Kind.PROBLEMS), (
            job,
            run.state and run.state.message,
            logs[-3000:],
        )
        expected = ["bravo"] if job == "views" else list(NAMES)
        if REPLICA and job != "views":
            assert "standby: skipped" in (run.state.message or ""), (job, run.state.message)
        for name in NAMES:
            with fleet.dbs[name].connect() as conn:
                rows = conn.execute(
                    "SELECT status FROM pgtender_operations WHERE job = %s AND flow_run_id = %s",
                    (job, run.id),
                ).fetchall()
            if name in expected:  # (a backfill records its items beside its own row)
                assert rows and {r[0] for r in rows} <= {"completed", "problems"}, (job, name, rows)
            else:
                assert rows == [], (job, name, rows)
    # the health results of the worker's run are in each target's own data_quality_checks
    for d in fleet.dbs.values():
        assert d.scalar(
            "SELECT count(*) FROM data_quality_checks WHERE flow_run_id = %s", (finished["health"].id,)
        )
