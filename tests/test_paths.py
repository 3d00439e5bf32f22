"""One behaviour on every path: a run ends the same way — exit code, ledger status, Prefect state
type, one line and no traceback — whether it ran from the plain CLI (no server), from the CLI beside
a running `pgtender up`, as a served deployment (what the UI's "Run" does) or on a process worker
elsewhere; and a crashed run (its process killed with SIGKILL mid-work) is found by the next run,
which marks its ledger row abandoned with what it had done and pages once.

Everything is a real process: `pgtender up` (a Prefect server with its store on PostgreSQL, every
deployment served), a second Prefect server with a process work pool and a worker started in
another directory, a webhook receiver for the pages. The outcomes are steered through the database:
done (views), skipped (the views lock held here), problems found (health with a stale event),
bad input (quality for a day after the database's today: rejected in the plan), infrastructure
error (capacity while its metrics table is locked past lock_timeout) and crash (views waiting on a
locked materialized view, its process killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.core.engine import Kind, verdicts
from flows.edge import prefect_store
from flows.edge.prefect_server import LocalPrefectServer, start_local_server
from tests import databases
from tests.conftest import Database, Templates, _build_migrated, _create_db, _drop_db, human_lines

ROOT = Path(__file__).parents[1]
PATHS = ("plain", "cli_up", "served", "worker")
OUTCOMES = ("done", "skipped", "problems", "bad_input", "infrastructure", "crash")
# Prefect's own state names: what the UI's run lists ask the API for (a deployment's Runs tab).
UI_STATE_NAMES = [
    "Scheduled", "Late", "Resuming", "AwaitingRetry", "AwaitingConcurrencySlot", "Pending", "Paused",
    "Suspended", "Running", "Retrying", "Completed", "Cached", "Cancelled", "Cancelling", "Crashed",
    "Failed", "TimedOut",
]  # fmt: skip
POLICY = """
[views]
lock_timeout_ms = 600000          # a refresh waits for a locked view: the crash case kills it there

[[alerts.channels]]
name = "oncall"
type = "webhook"
url_env = "PATHS_HOOK"
"""


@dataclass
class Hook:
    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)

    def pages(self, check: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["check"] == check]


@contextlib.contextmanager
def _hook() -> Iterator[Hook]:
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hook.posts.append(json.loads(self.rfile.read(int(self.headers.get("content-length", "0")))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Site:
    """What every path shares: the tended database, the environment, `up`, the worker's server."""

    db: Database
    env: dict[str, str]
    up_state: Path
    up_api: str
    worker_api: str
    hook: Hook
    tmp: Path


def _wait(what: str, ok: Any, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} not ready after {timeout} s" + (f": {log.read_text()[-3000:]}" if log else ""))


def _store(server_dsn: str, stack: contextlib.ExitStack) -> str | None:
    """A Prefect server's own store: a fresh database on the test server; None (SQLite in the
    server's home) where that server cannot hold Prefect's schema (the embedded one)."""
    if not databases.holds_prefect_schema(server_dsn):
        return None
    name = f"pgtender_paths_prefect_{uuid.uuid4().hex[:8]}"
    dsn = _create_db(server_dsn, name)
    stack.callback(_drop_db, server_dsn, name)
    return prefect_store.asyncpg_url(dsn)  # a TCP server or the embedded one's socket directory


def _popen(args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def site(server_dsn: str, templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("paths")
    with contextlib.ExitStack() as stack, _hook() as hook:
        name = f"pgtender_paths_{uuid.uuid4().hex[:8]}"
        _create_db(server_dsn, name, template=templates.get("migrated", _build_migrated))
        stack.callback(_drop_db, server_dsn, name)
        tended = Database(server_dsn, name)
        with tended.connect() as conn:  # not empty: `up` loads no demo data; a fresh event for health
            conn.execute(
                "INSERT INTO learning_events (occurred_at, ingested_at, event_type) VALUES (now(), now(), 'x')"
            )
        (tmp / "pgtender.toml").write_text(POLICY, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PGTENDER_", "PREFECT_"))}
        env.update(
            PGTENDER_DATABASE_URL=tended.dsn,
            PGTENDER_CONFIG=str(tmp / "pgtender.toml"),
            PATHS_HOOK=hook.url,
            DO_NOT_TRACK="1",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        # `pgtender up`: a Prefect server (store on PostgreSQL), every deployment served
        up_state = tmp / "up-state"
        up_env = {
            **env,
            "PGTENDER_STATE_DIR": str(up_state),
        }
        up_store = _store(server_dsn, stack)
        if up_store is None:  # two servers and a worker on SQLite stores answer 503 under this load
            pytest.skip(
                "the paths test keeps its Prefect servers' stores on PostgreSQL (pg_trgm): CI's server"
            )
        up_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = up_store
        up = _popen([sys.executable, "-m", "flows.edge.cli", "up"], up_env, tmp / "up.log")
        stack.callback(_stop, up)
        api_json = up_state / "prefect" / "api.json"
        _wait("pgtender up", api_json.exists, 240, tmp / "up.log")
        up_api = json.loads(api_json.read_text())["api_url"]
        _wait(
            "up's deployments",
            lambda: httpx.get(f"{up_api}/deployments/name/views/views", timeout=5).status_code == 200,
            120,
            tmp / "up.log",
        )
        # a process work pool on another Prefect server; one worker started in another directory
        worker_server: LocalPrefectServer = start_local_server(
            tmp / "worker-server", database_url=_store(server_dsn, stack)
        )
        stack.callback(worker_server.stop)
        worker_env = {
            **env,
            "PREFECT_API_URL": worker_server.api_url,
            "PREFECT_HOME": str(tmp / "worker-home"),
        }
        subprocess.run(
            [sys.executable, "-m", "prefect", "work-pool", "create", "pgtender", "--type", "process"],
            env=worker_env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        deploy = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file",
             "deployments/prefect.yaml"],
            cwd=ROOT, env=worker_env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
        elsewhere = tmp / "another-machine"
        elsewhere.mkdir()
        worker = _popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "pgtender", "--name", "w1"],
            {**worker_env, "PGTENDER_STATE_DIR": str(elsewhere / "state")},
            tmp / "worker.log",
            cwd=elsewhere,
        )
        stack.callback(_stop, worker)
        for api in (up_api, worker_server.api_url):  # no scheduled run of ours in the middle of a case
            _no_schedules(api)
        yield Site(tended, env, up_state, up_api, worker_server.api_url, hook, tmp)


def _no_schedules(api: str) -> None:
    """Every deployment's schedules switched off, their future runs removed (manual runs still go)."""
    deployments = httpx.post(f"{api}/deployments/filter", json={"limit": 200}, timeout=10).json()
    for d in deployments:
        for schedule in d.get("schedules") or []:
            httpx.patch(
                f"{api}/deployments/{d['id']}/schedules/{schedule['id']}", json={"active": False}, timeout=10
            ).raise_for_status()
    body = {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}, "limit": 200}
    for run in httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json():
        httpx.delete(f"{api}/flow_runs/{run['id']}", timeout=10)


# --------------------------------------------------------------------------- how a path runs a job


@dataclass
class Ended:
    exit_code: int | None = None  # the CLI paths
    state: Any = None  # the Prefect paths (the final state of the flow run)
    text: str = ""  # what the terminal showed (CLI) or the flow run's logs (Prefect)
    flow_run_id: str | None = None


def _cli(site: Site, state_dir: Path, job: str, args: list[str]) -> subprocess.Popen[str]:
    env = {**site.env, "PGTENDER_STATE_DIR": str(state_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "flows.edge.cli", "run", job, *args],
        cwd=site.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _flow_state(api: str, flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def _logs(api: str, flow_run_id: str) -> str:
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
    time.sleep(2)  # a run's last lines reach the API shortly after its state
    return "\n".join(r["message"] for r in httpx.post(f"{api}/logs/filter", json=body, timeout=10).json())


def _submit(api: str, job: str, parameters: dict[str, Any]) -> str:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        run: Any = run_deployment(f"{job}/{job}", parameters=parameters, timeout=0, as_subflow=False)
    return str(run.id)


def _wait_final(api: str, flow_run_id: str, timeout: float = 300) -> Any:
    ended: dict[str, Any] = {}

    def final() -> bool:
        run = _flow_state(api, flow_run_id)
        ended["run"] = run
        return run.state is not None and run.state.is_final()

    _wait(f"flow run {flow_run_id}", final, timeout)
    return ended["run"]


def start(site: Site, path: str, job: str, params: dict[str, Any]) -> Any:
    """Start ``job`` on ``path``: a CLI process, or a flow run id."""
    args = [a for k, v in params.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    if path == "plain":
        return _cli(site, site.tmp / f"plain-{uuid.uuid4().hex[:6]}", job, args)
    if path == "cli_up":
        return _cli(site, site.up_state, job, args)
    return _submit(site.up_api if path == "served" else site.worker_api, job, params)


def finish(site: Site, path: str, started: Any) -> Ended:
    if isinstance(started, subprocess.Popen):
        out, _ = started.communicate(timeout=300)
        found = re.search(r"\[flow run \S+ ([0-9a-f-]{36})\]", out)
        return Ended(exit_code=started.returncode, text=out, flow_run_id=found.group(1) if found else None)
    api = site.up_api if path == "served" else site.worker_api
    run = _wait_final(api, started)
    return Ended(state=run.state, text=_logs(api, started), flow_run_id=started)


# --------------------------------------------------------------------------- how outcomes are steered


def _ledger(site: Site, job: str, since: Any) -> list[tuple[str, str | None, int | None, dict[str, Any]]]:
    with site.db.connect() as conn:
        return conn.execute(
            "SELECT status, flow_run_id::text, process_id, counts FROM pgtender_operations"
            " WHERE job = %s AND started_at >= %s AND NOT (params ? 'item') ORDER BY started_at",
            (job, since),
        ).fetchall()


def _now(site: Site) -> Any:
    return site.db.scalar("SELECT clock_timestamp()")


@contextlib.contextmanager
def steer(site: Site, outcome: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The database made to give ``outcome``; (job, parameters) to run."""
    if outcome == "done":
        yield "views", {}
    elif outcome == "skipped":
        with site.db.connect() as holder:
            holder.execute("SELECT pg_advisory_lock(hashtext('pgtender.job'), hashtext('views'))")
            yield "views", {}
    elif outcome == "problems":
        with site.db.connect() as conn:
            conn.execute("DELETE FROM learning_events")
            conn.execute(
                "INSERT INTO learning_events (occurred_at, ingested_at, event_type)"
                " VALUES (now() - interval '1 hour', now() - interval '1 hour', 'stale')"
            )
        yield "health", {}
    elif outcome == "bad_input":
        tomorrow = site.db.scalar("SELECT (now() AT TIME ZONE 'UTC')::date + 1")
        yield "quality", {"day": tomorrow.isoformat()}
    elif outcome == "infrastructure":
        with site.db.connect(autocommit=False) as holder:
            holder.execute("LOCK TABLE capacity_planning_metrics IN ACCESS EXCLUSIVE MODE")
            yield "capacity", {}
            holder.rollback()
    else:  # crash: a refresh waiting on a locked materialized view, its process killed there
        with site.db.connect(autocommit=False) as holder:
            holder.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_pattern_trend")  # its lock, held
            yield "views", {}
            holder.rollback()


EXPECTED = {  # outcome -> (exit code, ledger status, Prefect state type, kind)
    "done": (0, "completed", "COMPLETED", Kind.DONE),
    "skipped": (0, "skipped", "COMPLETED", Kind.SKIPPED),
    "problems": (1, "problems", "FAILED", Kind.PROBLEMS),
    "bad_input": (2, "rejected", "FAILED", Kind.BAD_INPUT),
    "infrastructure": (3, "failed", "FAILED", Kind.INFRASTRUCTURE),
}


def _kill_when_waiting(site: Site, since: Any, path: str, started: Any) -> int:
    """Kill (SIGKILL) the process running the views refresh once it waits on the lock; its pid."""
    found: dict[str, int] = {}

    def waiting() -> bool:
        rows = [r for r in _ledger(site, "views", since) if r[0] == "started"]
        if not rows or rows[-1][2] is None:
            return False
        busy = site.db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE %s",
            ("%REFRESH MATERIALIZED VIEW%",),
        )
        found["pid"] = int(rows[-1][2])
        return bool(busy)

    _wait(f"the {path} views run waiting on the lock", waiting, 240)
    os.kill(found["pid"], signal.SIGKILL)
    return found["pid"]


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("path", PATHS)
def test_one_behaviour_on_every_path(site: Site, path: str, outcome: str) -> None:
    since = _now(site)
    pages_before = len(site.hook.pages("job.views"))
    with steer(site, outcome) as (job, params):
        started = start(site, path, job, params)
        if outcome == "crash":
            _kill_when_waiting(site, since, path, started)
        ended = finish(site, path, started)
    if outcome == "crash":
        _check_crash(site, path, since, ended, pages_before)
        return
    code, status, state_type, kind = EXPECTED[outcome]
    rows = _ledger(site, job, since)
    if ended.exit_code is not None:  # a CLI path: its outcome once, its exit code
        lines = human_lines(ended.text)
        assert ended.exit_code == code, (path, outcome, ended.text)
        assert len(lines) == 1 and lines[0].startswith(f"{job}: {kind}"), (path, outcome, ended.text)
    assert "Traceback" not in ended.text, (path, outcome, ended.text[-3000:])
    if path != "plain":  # a Prefect run: its state, found where the UI looks
        flow_run_id = ended.flow_run_id
        if ended.state is None:  # the CLI beside `up`: the line names the flow run it followed
            assert flow_run_id, ended.text
            run = _flow_state(site.up_api, flow_run_id)
            state = run.state
            assert "Traceback" not in _logs(site.up_api, flow_run_id)
        else:
            state = ended.state
        assert state.type.value == state_type and state.name in UI_STATE_NAMES, (path, outcome, state)
        assert verdicts.from_state(state).kind is kind, (path, outcome, state.message)
        api = site.worker_api if path == "worker" else site.up_api
        assert _visible_on_its_deployment(api, job, flow_run_id), (path, outcome, "not on the Runs tab")
        assert all(r[1] == flow_run_id for r in rows), rows
    assert [r[0] for r in rows] == [status], (path, outcome, rows)


def _visible_on_its_deployment(api: str, job: str, flow_run_id: str | None) -> bool:
    """The query the UI's deployment Runs tab sends: runs of the deployment, by Prefect's state names."""
    deployment = httpx.get(f"{api}/deployments/name/{job}/{job}", timeout=10).json()
    body = {
        "flow_runs": {
            "deployment_id": {"any_": [deployment["id"]]},
            "state": {"name": {"any_": UI_STATE_NAMES}},
        },
        "sort": "START_TIME_DESC",
        "limit": 50,
    }
    found = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()
    return any(r["id"] == flow_run_id for r in found)


def _check_crash(site: Site, path: str, since: Any, ended: Ended, pages_before: int) -> None:
    """The killed run: Prefect calls it Crashed where there is Prefect; the next run (here, plainly)
    marks its row abandoned — counts of what it had done kept — and the crash pages job.views once."""
    if path == "plain":
        assert ended.exit_code == -signal.SIGKILL
    elif path == "cli_up":  # the CLI followed the remote run: it ended Crashed, an infrastructure error
        assert ended.exit_code == 3, ended.text
        lines = human_lines(ended.text)
        assert len(lines) == 1 and lines[0].startswith("views: infrastructure error: the run crashed"), (
            ended.text
        )
    else:
        assert ended.state.type.value == "CRASHED", ended.state
    (crashed,) = [r for r in _ledger(site, "views", since) if r[0] == "started"]
    assert crashed[3].get("views") is not None  # the count written before it waited: kept
    nxt = _cli(site, site.tmp / f"next-{uuid.uuid4().hex[:6]}", "views", [])
    out, _ = nxt.communicate(timeout=300)
    assert nxt.returncode == 0, out
    rows = _ledger(site, "views", since)
    assert [r[0] for r in rows] == ["abandoned", "completed"], rows
    assert rows[0][3].get("views") == crashed[3]["views"]
    pages = site.hook.pages("job.views")[pages_before:]
    assert [p["event"] for p in pages] == ["page", "resolve"], pages
    assert "crashed" in pages[0]["summary"]


@pytest.mark.slow
def test_a_run_by_hand_while_one_is_going_reports_that_run(site: Site) -> None:
    """`pgtender run views` while a (scheduled) views run is going: the command follows that run and
    reports its outcome, never "Deployment concurrency limit reached" as an infrastructure error."""
    since = _now(site)
    with site.db.connect(autocommit=False) as holder:
        holder.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_pattern_trend")  # its lock, held
        going = _submit(site.up_api, "views", {})
        _wait(
            "the views run waiting",
            lambda: any(r[0] == "started" for r in _ledger(site, "views", since)),
            240,
        )
        by_hand = _cli(site, site.up_state, "views", [])
        time.sleep(20)  # the command starts (imports Prefect), finds the going run and follows it
        holder.rollback()  # the going run goes on and finishes
    out, _ = by_hand.communicate(timeout=300)
    assert by_hand.returncode == 0, out
    (line,) = human_lines(out)
    assert line.startswith("views: done:") and "the views run already going: flow run" in line, out
    assert going in line
    assert [r[0] for r in _ledger(site, "views", since)] == ["completed"]  # one run: the going one
