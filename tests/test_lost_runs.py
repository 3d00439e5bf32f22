"""Issue 23.2, a lost worker is noticed (the end-to-end case with a killed worker: test_zombies.py).

- The health job's crash watchdog finds the dead runs of every other job within its 5 minutes — a
  daily or weekly job's crash pages then, not at its next run — marks them abandoned with what
  they had done, and pages each crash once; the job's next run resolves the page. The dead runs are
  real: a ledger row started by another process that is then SIGKILLed (its session gone), or
  whose Prefect flow run ended Crashed while its session lingers (a lost machine).
- `pgtender automations apply` is idempotent against a real Prefect API; every way a flow run is
  started (served, process / Docker / Kubernetes workers) carries the heartbeat setting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml  # type: ignore[import-untyped]

from flows.edge import automations
from flows.edge.cli import main
from tests.conftest import Database, flow_run, run_job
from tests.test_paths import Hook, _hook

STARTER = """
import json, sys
import psycopg
from flows.core import ledger
from flows.core.db import load_sql
from psycopg.types.json import Jsonb
conn = psycopg.connect(sys.argv[1], autocommit=True)
op = ledger.start_operation(conn, sys.argv[2], flow_run_id=sys.argv[4] if len(sys.argv) > 4 else None)
conn.execute(load_sql("queries/ledger/progress.sql"),
             {"operation_id": op.operation_id, "counts": Jsonb(json.loads(sys.argv[3]))})
print(op.operation_id, flush=True)
sys.stdin.read()  # work "forever", until killed
"""
POLICY = '[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "WATCHDOG_HOOK"\n'


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    (tmp_path / "pgtender.toml").write_text(POLICY, encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(tmp_path / "pgtender.toml"))
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(tmp_path / "state"))
    with _hook() as receiver:
        monkeypatch.setenv("WATCHDOG_HOOK", receiver.url)
        yield receiver


@pytest.fixture
def runs(migrated_db: Database) -> Iterator[Any]:
    """start(job, counts, kill=True, flow_run_id=None) -> operation id of a run in another process."""
    procs: list[subprocess.Popen[str]] = []

    def start(job: str, counts: dict[str, Any], *, kill: bool = True, flow_run_id: str | None = None) -> UUID:
        args = [sys.executable, "-c", STARTER, migrated_db.dsn, job, json.dumps(counts)]
        proc = subprocess.Popen(
            [*args, *([flow_run_id] if flow_run_id else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        operation_id = UUID(proc.stdout.readline().strip())
        if kill:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            deadline = time.monotonic() + 30  # the server notices the dead client on its own schedule
            while migrated_db.scalar(
                "SELECT pgtender_session_alive(pid, started_at) FROM pgtender_operations"
                " WHERE operation_id = %s",
                (operation_id,),
            ):
                assert time.monotonic() < deadline, "the killed run's session never went away"
                time.sleep(0.05)
        return operation_id

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _row(db: Database, operation_id: UUID) -> tuple[Any, ...]:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT status, counts, error FROM pgtender_operations WHERE operation_id = %s", (operation_id,)
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_health_abandons_another_job_s_dead_run_and_pages_it_once(
    migrated_db: Database, hook: Hook, runs: Any
) -> None:
    dead = runs("views", {"views": 2})
    alive = runs("capacity", {"tables": 1}, kill=False)  # a run going on elsewhere: left alone

    report = run_job("health")
    status, counts, error = _row(migrated_db, dead)
    assert status == "abandoned" and counts == {"views": 2}, (status, counts)
    assert "crash watchdog" in error and "database session" in error, error
    assert _row(migrated_db, alive)[0] == "started"
    (result,) = report.results
    assert result.counts["alerts"]["crashed_runs_found"] == 1, result.counts
    assert result.counts["alerts"]["crash_pages_due"] == 1, result.counts
    pages = hook.pages("job.views")
    assert [p["event"] for p in pages] == ["page"], pages
    assert "crashed" in pages[0]["summary"]
    assert hook.pages("job.capacity") == []

    run_job("health")  # the next health run: nothing new to find, nothing paged again
    assert [p["event"] for p in hook.pages("job.views")] == ["page"]

    nxt = run_job("views")  # the job's next run: it finds nothing left to abandon, and resolves
    assert nxt.verdict.exit_code == 0, nxt.verdict.line
    assert [p["event"] for p in hook.pages("job.views")] == ["page", "resolve"]


@pytest.mark.usefixtures("prefect_api")
def test_health_abandons_a_run_whose_flow_run_crashed(migrated_db: Database, hook: Hook, runs: Any) -> None:
    """Its session lingers (its machine lost without closing the connection), but Prefect set its
    flow run Crashed (the heartbeat automation): the health run asks the API and abandons it."""
    from prefect import flow, get_client
    from prefect.states import Crashed

    @flow(name="pgtender-test-lost")
    def lost() -> None:
        return None

    with get_client(sync_client=True) as client:
        crashed = client.create_flow_run(lost)
        client.set_flow_run_state(crashed.id, Crashed(message="no heartbeat"), force=True)
    lingering = runs("quality", {"suites": 3}, kill=False, flow_run_id=str(crashed.id))

    flow_run("health")
    status, counts, error = _row(migrated_db, lingering)
    assert status == "abandoned" and counts == {"suites": 3}, (status, counts)
    assert f"flow run {crashed.id} ended Crashed" in error and "crash watchdog" in error, error
    assert [p["event"] for p in hook.pages("job.quality")] == ["page"]


DEPLOYMENTS = Path(__file__).parents[1] / "deployments"


def test_every_way_a_worker_starts_a_run_heartbeats() -> None:
    """The deployment files carry the heartbeat (a worker's own environment may lack it); the
    Kubernetes template's env default has it too. (`pgtender serve` passes it to its runner.)"""
    for name in ("prefect.yaml", "prefect.image.yaml"):
        spec = yaml.safe_load((DEPLOYMENTS / name).read_text("utf-8"))
        for d in spec["deployments"]:
            assert d["work_pool"]["job_variables"]["env"] == automations.HEARTBEAT_ENV, (name, d["name"])
    template = json.loads((DEPLOYMENTS / "k8s" / "base-job-template.json").read_text("utf-8"))
    env = template["variables"]["properties"]["env"]["default"]
    assert (
        env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]
        == automations.HEARTBEAT_ENV["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]
    )
    assert int(automations.HEARTBEAT_ENV["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) >= 30  # Prefect's minimum
    assert automations.WITHIN.total_seconds() == 3 * automations.HEARTBEAT_SECONDS


@pytest.mark.usefixtures("prefect_api")
def test_automations_apply_creates_updates_and_leaves_alone(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect import get_client

    def apply() -> str:
        try:
            main(["automations", "apply"])
        except SystemExit as done:  # exits only when something failed
            pytest.fail(f"exit {done.code}: {capsys.readouterr()}")
        return capsys.readouterr().out

    with get_client(sync_client=True) as client:
        for found in client.read_automations_by_name(automations.NAME):
            client.delete_automation(found.id)
    assert "created" in apply()
    assert "unchanged" in apply()
    with get_client(sync_client=True) as client:
        (found,) = client.read_automations_by_name(automations.NAME)
        loose = automations.automation()
        loose.trigger.within = automations.WITHIN * 4  # someone widened the window by hand
        client.update_automation(found.id, loose)
    assert "updated" in apply()
    with get_client(sync_client=True) as client:
        (found,) = client.read_automations_by_name(automations.NAME)
        assert found.trigger.within == automations.WITHIN
        client.create_automation(automations.automation())  # two applies at once
    out = apply()
    assert "unchanged" in out and "removed duplicate" in out, out
    with get_client(sync_client=True) as client:
        (found,) = client.read_automations_by_name(automations.NAME)
        assert found.enabled and found.actions[0].type == "change-flow-run-state"
