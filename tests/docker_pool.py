"""What the Docker work-pool test (tests/test_docker_pool.py) stands on: pgtender's image (built by
deployments/build-image.sh), a Prefect server with its store on PostgreSQL, a Docker work pool whose
base job template carries the workers' environment, the deployments of
deployments/prefect.image.yaml, and `prefect worker start --type docker` processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.edge import prefect_store
from flows.edge.prefect_server import LocalPrefectServer, start_local_server
from tests import databases
from tests.conftest import _create_db, _drop_db, _dsn_for

ROOT = Path(__file__).parents[1]
IMAGE_ENV = "PGTENDER_TEST_IMAGE"  # the image .ci/docker built; unset: deployments/build-image.sh here
POLICY_IN_CONTAINER = "/etc/pgtender/pgtender.toml"
WORKER = (sys.executable, "-m", "prefect", "worker", "start")


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False).returncode == 0


def pgtender_image() -> str:
    """The image's tag: $PGTENDER_TEST_IMAGE, or deployments/build-image.sh (cached: seconds when
    nothing changed). Skipped without Docker (and a skipped test fails CI)."""
    if not docker_running():
        pytest.skip("Docker is not running here (.ci/docker installs and starts it)")
    tag = os.environ.get(IMAGE_ENV)
    if not tag:
        done = subprocess.run(
            [str(ROOT / "deployments" / "build-image.sh")],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        tag = done.stdout.strip().splitlines()[-1]
    docker("image", "inspect", tag)
    return tag


@contextlib.contextmanager
def prefect_server_on_postgresql(server_dsn: str, home: Path) -> Iterator[LocalPrefectServer]:
    """`prefect server start` with its store in a fresh database of the test server (as `pgtender
    up` and a stand-alone server for workers run it), its scheduler off: only the test's runs run."""
    if not databases.over_tcp(server_dsn):
        pytest.skip("the containers reach the databases over TCP: the embedded server has a socket only")
    name = f"pgtender_prefect_{uuid.uuid4().hex[:8]}"
    _create_db(server_dsn, name)
    old = os.environ.get("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED")
    os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = "false"
    try:
        server = start_local_server(
            home, database_url=prefect_store.asyncpg_url(_dsn_for(server_dsn, name)), timeout=180
        )
    finally:
        if old is None:
            os.environ.pop("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED")
        else:
            os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = old
    try:
        yield server
    finally:
        server.stop()
        _drop_db(server_dsn, name)


def create_docker_pool(name: str, env: dict[str, str], volumes: list[str]) -> None:
    """A Docker work pool whose base job template gives every container the workers' environment
    (deployments/README.md): host networking, the policy mounted read-only, the variables of the
    worker environment table; the image comes from the deployment, never pulled (no registry)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect_docker.worker import DockerWorker

    template = DockerWorker.get_default_base_job_template()
    props = template["variables"]["properties"]
    props["env"]["default"] = env
    props["volumes"]["default"] = volumes
    props["network_mode"]["default"] = "host"
    props["image_pull_policy"]["default"] = "Never"
    props["auto_remove"]["default"] = False  # the test reads exit codes, then removes its containers
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="docker", base_job_template=template))


def image_deployments_file(pool: str, image: str, dest: Path) -> Path:
    """deployments/prefect.image.yaml for the image build-image.sh made, as the README says to
    register it offline (deployments/prebuilt_yaml.py: no build or push step; no registry here)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "deployments" / "prebuilt_yaml.py"), "--image", image, "--pool", pool],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load(done.stdout)
    assert "build" not in spec and "push" not in spec and spec["pull"] == []
    assert {d["work_pool"]["job_variables"]["image"] for d in spec["deployments"]} == {image}
    dest.write_text(done.stdout, "utf-8")
    return dest


def deploy(prefect_file: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            str(prefect_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def deployment_ids() -> dict[str, Any]:
    """Every registered deployment's id by its name (the job's name)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {d.name: d.id for d in client.read_deployments()}


@contextlib.contextmanager
def docker_workers(
    pool: str, env: dict[str, str], cwd: Path, count: int, limit: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`prefect worker start --type docker` processes (this test's only), stopped by process group;
    each runs at most ``limit`` flow runs at a time (the first to poll would take them all)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            log = (cwd / f"docker-worker-{i}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [
                        *WORKER,
                        "--pool",
                        pool,
                        "--type",
                        "docker",
                        "--name",
                        f"docker-{i}",
                        "--limit",
                        str(limit),
                    ],
                    cwd=cwd,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@dataclass
class Container:
    id: str
    name: str
    status: str
    exit_code: int
    image: str
    network_mode: str
    user: str


def containers_of(run_ids: list[str]) -> dict[str, Container]:
    """The containers the Docker workers started for these flow runs, by flow run id."""
    found: dict[str, Container] = {}
    for run_id in run_ids:
        ids = docker("ps", "-aq", "--filter", f"label=io.prefect.flow-run-id={run_id}").split()
        for cid in ids:
            (info,) = json.loads(docker("inspect", cid))
            found[run_id] = Container(
                id=cid,
                name=info["Name"].lstrip("/"),
                status=info["State"]["Status"],
                exit_code=info["State"]["ExitCode"],
                image=info["Config"]["Image"],
                network_mode=info["HostConfig"]["NetworkMode"],
                user=info["Config"]["User"],
            )
    return found


def wait_final(run_ids: list[Any], timeout: float) -> dict[Any, Any]:
    """The flow runs once every one is in a final state (AssertionError naming those that are not).
    One API call every 2 s for all of them: the server shares the machine with the containers."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    runs: dict[Any, Any] = {}
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
            runs = {r.id: r for r in found}
            pending = [
                rid
                for rid in run_ids
                if rid not in runs or runs[rid].state is None or not runs[rid].state.is_final()
            ]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert not pending, [
        (runs[p].name, runs[p].state and runs[p].state.name) if p in runs else p for p in pending
    ]
    return runs
