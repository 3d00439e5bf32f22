"""Containers for real (issue 23.4): pgtender's image built here from deployments/Dockerfile
(deployments/build-image.sh: a Debian base image, wheels from the host, no index in the build), a
Prefect server with its store on PostgreSQL, a Docker work pool with two `prefect worker start
--type docker` workers, the deployments of deployments/prefect.image.yaml, three target databases.
Containers run on the host's network with only what the pool's base job template gives them (the
worker environment table of deployments/README.md): the policy mounted read-only, one target's URL
in the environment, another's as a reference to a Prefect Secret block (the worker resolves it),
the third from the policy's `url_secret`, the on-call webhook's URL.

Every job completes in a container, its ledger rows in each target's database, its pages at the
webhook once per (target, check); and a container killed mid-run (`docker kill`, its views refresh waiting on a lock): the worker reports the run
Crashed, its ledger row stays `started` until the next run of the job on that target marks it
`abandoned`, and that next run goes through.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows.core import clock
from flows.core.engine import Kind
from flows.core.policy import settings
from tests.conftest import verdict_of
from tests.docker_pool import (
    POLICY_IN_CONTAINER,
    containers_of,
    create_docker_pool,
    deploy,
    deployment_ids,
    docker,
    docker_workers,
    image_deployments_file,
    pgtender_image,
    prefect_server_on_postgresql,
    wait_final,
)
from tests.fleet_fixtures import BASE, NAMES, Fleet
from tests.test_alerts import Receiver, receiver  # noqa: F401 - the real HTTP receiver fixture
from tests.worker_env import SET_BY_DEPLOYMENTS, worker_needs

CHARLIE_SECRET = "fleet-charlie-url"  # the policy's url_secret for charlie
BRAVO_SECRET = "fleet-bravo-url"  # referenced by the pool's base job template for FLEET_BRAVO_URL
ROLLUP_LOCK = "SELECT {}(hashtext('pgtender.rollup'), hashtext('learning_events_daily'))"


def _policy() -> str:
    """The fleet's policy as the containers read it: charlie's URL from a Prefect Secret block, a
    long lock wait for charlie's views (so a run can be caught mid-work), the on-call webhook."""
    charlie = '[targets.charlie]\nurl_env = "FLEET_CHARLIE_URL"\n'
    assert charlie in BASE
    return (
        BASE.replace(charlie, f'[targets.charlie]\nurl_secret = "{CHARLIE_SECRET}"\n')
        + "[targets.charlie.views]\nlock_timeout_ms = 120000\n"
        + '\n[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "ONCALL_HOOK"\n'
    )


def _ledger(fleet: Fleet, name: str, job: str, run_id: Any) -> list[str]:
    with fleet.dbs[name].connect() as conn:
        rows = conn.execute(
            "SELECT status FROM pgtender_operations WHERE job = %s AND flow_run_id = %s ORDER BY started_at",
            (job, run_id),
        ).fetchall()
    return [r[0] for r in rows]


def _waiting_on_rollup_lock(fleet: Fleet) -> bool:
    with fleet.dbs["charlie"].connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ).fetchone()
    return bool(row and row[0])


_T0 = [0.0]


def _mark(what: str) -> None:
    """The test's timeline (shown when it fails, or with -s): where its wall time goes."""
    print(f"docker pool test: {time.monotonic() - _T0[0]:6.1f} s {what}", flush=True)


def _wait_for(what: str, predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


@pytest.mark.slow
@pytest.mark.real_clock  # the containers run on the real clock: a calendar session's instant misses them
@pytest.mark.timeout(1800)  # generous: under a load average of 14 it took 8 minutes
def test_docker_pool_runs_every_job_and_a_killed_container_crashes_its_run(
    fleet: Fleet,
    server_dsn: str,
    receiver: Receiver,  # noqa: F811
    tmp_path: Path,
) -> None:
    from prefect.blocks.system import Secret
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _T0[0] = time.monotonic()
    image = pgtender_image()
    _mark(f"image {image}")
    policy = tmp_path / "pgtender.toml"
    policy.write_text(_policy(), "utf-8")
    policy.chmod(0o644)  # the containers run as uid 10001
    pool = f"pgtender-docker-{uuid.uuid4().hex[:6]}"
    container_env = {
        "PGTENDER_CONFIG": POLICY_IN_CONTAINER,
        # a worker passes its own PREFECT_* settings to the container (its PREFECT_HOME, a path of the
        # worker's machine, among them): the image's home again
        "PREFECT_HOME": "/var/lib/pgtender/prefect",
        "FLEET_ALPHA_URL": fleet.dbs["alpha"].dsn,
        # resolved by the worker when it starts the container: the template holds no secret
        "FLEET_BRAVO_URL": "{{ prefect.blocks.secret." + BRAVO_SECRET + " }}",
        "ONCALL_HOOK": receiver.url,
        # the report's SMTP server (the report runs dry here: nothing is sent)
        "PGTENDER_SMTP_HOST": "127.0.0.1",
        "PGTENDER_SMTP_PORT": "25",
        "PGTENDER_SMTP_TLS": "none",
        "PGTENDER_SMTP_USERNAME": "pgtender",
        "PGTENDER_SMTP_PASSWORD": "unused",
    }
    # the pool carries every variable of the worker environment table for this policy (the worker
    # passes PREFECT_API_URL on, the image sets PGTENDER_STATE_DIR, the deployments the heartbeat)
    needs = worker_needs(settings.load_policy(policy))
    assert set(needs.variables) == {
        *container_env,
        *SET_BY_DEPLOYMENTS,
        "PREFECT_API_URL",
        "PGTENDER_STATE_DIR",
    } - {"PREFECT_HOME"}
    assert set(needs.blocks) == {CHARLIE_SECRET}
    runs: dict[str, Any] = {}
    workers_dir = tmp_path / "workers"
    workers_dir.mkdir()
    with (
        prefect_server_on_postgresql(server_dsn, tmp_path / "server") as server,
        temporary_settings({PREFECT_API_URL: server.api_url}),
    ):
        _mark("Prefect server up (store on PostgreSQL)")
        Secret(value=fleet.dbs["charlie"].dsn).save(CHARLIE_SECRET)
        Secret(value=fleet.dbs["bravo"].dsn).save(BRAVO_SECRET)
        create_docker_pool(pool, container_env, [f"{policy}:{POLICY_IN_CONTAINER}:ro"])
        env = {**os.environ, "PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(tmp_path / "home")}
        for name in ("PGTENDER_DATABASE_URL", "PGTENDER_CONFIG", *(f"FLEET_{n.upper()}_URL" for n in NAMES)):
            env.pop(name, None)  # the workers' machine knows nothing of the fleet: the pool does
        try:
            with docker_workers(pool, {**env, "PREFECT_WORKER_QUERY_SECONDS": "2"}, workers_dir, 2, 4):
                deploy(
                    image_deployments_file(pool, image, tmp_path / "prefect.yaml"), env
                )  # workers start meanwhile
                _mark("deployed")
                after_kill = _every_job_and_a_kill(fleet, deployment_ids(), runs, run_deployment)
            _mark("workers stopped")
            finished = wait_final(list(runs.values()), 5)
            containers = containers_of([str(r) for r in runs.values()])
        finally:
            with contextlib.suppress(AssertionError):
                for c in containers_of([str(r) for r in runs.values()]).values():
                    docker("rm", "-f", c.id)
    worker_logs = [p.read_text(errors="replace") for p in sorted(workers_dir.glob("docker-worker-*.log"))]
    logs = "".join(worker_logs)
    by_job = {job: finished[rid] for job, rid in runs.items()}

    # every run went through the pool into a container of the image, on the host's network
    assert {str(r.work_pool_name) for r in by_job.values()} == {pool}
    assert set(containers) == {str(r) for r in runs.values()}, logs[-3000:]
    assert all("submitted to infrastructure" in log for log in worker_logs), "a worker ran nothing"
    for c in containers.values():
        assert (c.image, c.network_mode, c.user) == (image, "host", "10001:10001"), c

    # the jobs: Completed (or a finding) in their container, ledger rows in each target's database
    for job in ("capacity", "health", "partitions", "retention", "views", "quality", "report", "backfill"):
        state = by_job[job].state
        assert (
            state is not None
            and state.type.value in ("COMPLETED", "FAILED")
            and verdict_of(state).kind in (Kind.DONE, Kind.PROBLEMS)
        ), (job, state, logs[-3000:])
        assert containers[str(runs[job])].exit_code == 0, job
        for name in NAMES:
            rows = _ledger(fleet, name, job, runs[job])
            if job != "views" or name == "charlie":
                assert rows and set(rows) <= {"completed", "problems"}, (job, name, rows)
            else:
                assert rows == [], (job, name, rows)
    assert "is not set" not in logs and "FileNotFoundError" not in logs, logs[-3000:]
    # pages reached the on-call webhook from the containers, each (target, check) once
    keys = [(p["event"], p["target"], p["check"], p.get("subject")) for p in receiver.posts]
    _mark(f"notices: {sorted(keys)}")
    assert len(keys) == len(set(keys)), keys
    assert {p["target"] for p in receiver.events("page")} == set(NAMES), keys

    # the killed container: exit 137; Prefect: Crashed (the worker saw its container die); the
    # ledger row is `abandoned` (found by the health job's crash watchdog or the next views run)
    killed, after = by_job["views-killed"], by_job["views"]
    assert containers[str(runs["views-killed"])].exit_code == 137
    assert killed.state is not None and killed.state.type == StateType.CRASHED, killed.state
    assert "137" in (killed.state.message or ""), killed.state.message
    assert after.state is not None and after.state.name == "Completed", (after.state, logs[-3000:])
    assert _ledger(fleet, "charlie", "views", runs["views-killed"]) == ["abandoned"]
    assert _ledger(fleet, "charlie", "views", runs["views"]) == ["completed"]
    # right after the kill: `started`, or already `abandoned` when the health run of the same batch
    # (its crash watchdog, every 5 minutes in production) found the dead session first
    assert after_kill in (["started"], ["abandoned"])


def _every_job_and_a_kill(
    fleet: Fleet, ids: dict[str, Any], runs: dict[str, Any], run_deployment: Any
) -> list[str]:
    """Every job through the Docker pool. The views run on charlie is caught mid-work (its rollup
    waits on a lock this test holds) and its container killed; the next views run on charlie is the
    one that completes. The backfill (it re-runs capacity, whose per-target lock would make a
    concurrent capacity run skip, as it should) starts once capacity is done. Returns the killed
    run's ledger rows as they were once Prefect had the run in a final state (before the next views
    run)."""
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    cases: dict[str, dict[str, Any]] = {
        "capacity": {},
        "health": {},
        "partitions": {"dry_run": True},
        "retention": {"dry_run": True},
        "quality": {"day": yesterday},
        "report": {"dry_run": True},
    }

    def submit(key: str, job: str, parameters: dict[str, Any]) -> None:
        runs[key] = run_deployment(ids[job], parameters=parameters, timeout=0, as_subflow=False).id

    with psycopg.connect(fleet.dbs["charlie"].dsn, autocommit=True) as holder:
        holder.execute(ROLLUP_LOCK.format("pg_advisory_lock"))
        submit("views-killed", "views", {"target": "charlie"})
        for job, parameters in cases.items():
            submit(job, job, parameters)
        _wait_for(
            "the views run on charlie to wait on the rollup lock",
            lambda: (
                _ledger(fleet, "charlie", "views", runs["views-killed"]) == ["started"]
                and _waiting_on_rollup_lock(fleet)
            ),
            600,
        )
        (container,) = containers_of([str(runs["views-killed"])]).values()
        _mark("views on charlie waiting on the rollup lock: docker kill")
        docker("kill", container.id)
        wait_final([runs["views-killed"]], 180)
        after_kill = _ledger(fleet, "charlie", "views", runs["views-killed"])
        # PostgreSQL does not notice a dead client while its backend waits on a lock (until the lock
        # is granted or lock_timeout fires); the run's lock session, idle, ended at once
        _mark(f"the killed run is final; its backend still waits: {_waiting_on_rollup_lock(fleet)}")
        holder.execute(ROLLUP_LOCK.format("pg_advisory_unlock"))
    submit("views", "views", {"target": "charlie"})
    wait_final([runs["capacity"]], 600)
    submit("backfill", "backfill", {"start": yesterday, "end": yesterday, "jobs": ["capacity"]})
    wait_final([runs[job] for job in (*cases, "views", "backfill")], 600)
    _mark("every run final")
    return after_kill
