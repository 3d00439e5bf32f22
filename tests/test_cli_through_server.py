"""`pgtender run` beside a running server: the run is a run of the job's deployment, visible in the
UI (it carries the deployment's id), executed by the process serving the deployments, its logs
streamed back; the ledger row names that flow run. Everything here is a separate process, as on a
user's machine: a Prefect server of its own, `pgtender serve`, then `pgtender run health`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import Database, human_lines, run_pgtender
from tests.serve_fixtures import serving


@pytest.mark.slow
def test_a_cli_run_is_a_run_of_the_deployment_on_the_running_server(
    migrated_db: Database, tmp_path: Path
) -> None:
    with serving(migrated_db.dsn, tmp_path) as served:
        deployment = served.deployment("health")  # registered by `serve`
        run = run_pgtender(["run", "health"], served.env, timeout=240)
        assert run.returncode in (0, 1), run.stdout + run.stderr  # done, or found problems
        shown = run.stdout + run.stderr
        submitted = re.search(
            r"^health: (done|problems found): .*\[flow run \S+ ([0-9a-f-]{36})\]$", shown, re.M
        )
        assert submitted, shown
        assert human_lines(shown) == [submitted.group(0)], shown  # its outcome, once
        assert "no pgtender server is running" not in run.stdout + run.stderr
        flow_run_id = submitted.group(2)

        flow_run = served.api.get(f"/flow_runs/{flow_run_id}").json()
        assert flow_run["deployment_id"] == deployment["id"]  # in the UI, under the health deployment
        assert flow_run["state"]["type"] in ("COMPLETED", "FAILED")
        with migrated_db.connect() as conn:
            ledger = conn.execute(
                "SELECT flow_run_id::text, status FROM pgtender_operations WHERE job = 'health'"
            ).fetchall()
        assert [r[0] for r in ledger] == [flow_run_id]  # the served process ran it, under that flow run
        assert served.stop(group=True, timeout=60) == 0  # how `up` or systemd stops serving
        shown = served.text()
        assert "SIGTERM received: stopping" in shown
        assert "never awaited" not in shown, shown[-2000:]  # Prefect's own handler warned on every stop
