"""`pgtender run` beside a running server: the run is a run of the job's deployment, visible in the
UI (it carries the deployment's id), executed by the process serving the deployments, its logs
streamed back; the ledger row names that flow run. Everything here is a separate process, as on a
user's machine: a Prefect server of its own, `pgtender serve`, then `pgtender run health`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.edge.prefect_server import start_local_server
from tests.conftest import Database, human_lines, run_pgtender


@pytest.mark.slow
def test_a_cli_run_is_a_run_of_the_deployment_on_the_running_server(
    migrated_db: Database, tmp_path: Path
) -> None:
    server = start_local_server(tmp_path / "server")
    env = {
        **os.environ,
        "PREFECT_API_URL": server.api_url,
        "PREFECT_HOME": str(tmp_path / "home"),
        "PGTENDER_DATABASE_URL": migrated_db.dsn,
        "PGTENDER_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("PGTENDER_CONFIG", None)
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows.edge.cli", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # the deployments are registered by `serve`
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            if httpx.get(f"{server.api_url}/deployments/name/health/health", timeout=10).status_code == 200:
                break
            time.sleep(0.5)
        else:
            pytest.fail("pgtender serve registered no deployments: " + (tmp_path / "serve.log").read_text())

        run = run_pgtender(["run", "health"], env, timeout=240)
        assert run.returncode in (0, 1), run.stdout + run.stderr  # done, or found problems
        shown = run.stdout + run.stderr
        submitted = re.search(
            r"^health: (done|problems found): .*\[flow run \S+ ([0-9a-f-]{36})\]$", shown, re.M
        )
        assert submitted, shown
        assert human_lines(shown) == [submitted.group(0)], shown  # its outcome, once
        assert "no pgtender server is running" not in run.stdout + run.stderr
        flow_run_id = submitted.group(2)

        flow_run = httpx.get(f"{server.api_url}/flow_runs/{flow_run_id}", timeout=10).json()
        deployment = httpx.get(f"{server.api_url}/deployments/name/health/health", timeout=10).json()
        assert flow_run["deployment_id"] == deployment["id"]  # in the UI, under the health deployment
        assert flow_run["state"]["type"] in ("COMPLETED", "FAILED")
        with migrated_db.connect() as conn:
            ledger = conn.execute(
                "SELECT flow_run_id::text, status FROM pgtender_operations WHERE job = 'health'"
            ).fetchall()
        assert [r[0] for r in ledger] == [flow_run_id]  # the served process ran it, under that flow run
        os.killpg(serve.pid, signal.SIGTERM)  # how a container or `up` stops serving
        assert serve.wait(timeout=60) == 0
        served = (tmp_path / "serve.log").read_text()
        assert "SIGTERM received: stopping" in served
        assert "never awaited" not in served, served[-2000:]  # Prefect's own handler warned on every stop
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        log.close()
        server.stop()
