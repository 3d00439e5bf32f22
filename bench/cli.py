"""bench/cli: `pgtender run health` end to end through the running `pgtender up`, against an empty
flow run submitted the same way, in the same run; and the same command with no server running
(the job's plain core, no Prefect).

    .venv/bin/python bench/cli.py [--repeat 5] [--rows-per-day 2000]

Creates a scratch database on PGTENDER_BENCH_SERVER (default
postgresql://postgres@127.0.0.1:5432/postgres) and a scratch state directory (HOME too: nothing may
land in ~/.prefect), starts `pgtender up` there (demo data, a local Prefect server, every
deployment served), and a second runner beside it serving one empty flow with the same polling
interval. Then, alternating, each a fresh process timed from spawn to exit:

  health   `pgtender run health`: finds the recorded API, submits a run of health/health, follows
           it to its end, prints its outcome once, exits with its code
  empty    a process that submits a run of the empty deployment through the same client code
           (``flows.edge.dispatch.through_deployment``) and follows it the same way

ratio = median(health) / median(empty); target <= 1.5. After `up` is stopped:

  plain    `pgtender run health` with no server running (the engine here, no Prefect)

Absolute times are printed too; the machine is shared, so the medians of --repeat rounds count.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PGTENDER = str(Path(sys.executable).parent / "pgtender")


def _empty() -> None:
    """The empty flow's body."""


def serve_empty() -> None:
    """Serve the empty flow against PREFECT_API_URL, polling like pgtender's runner (2 s)."""
    from prefect import flow
    from prefect.client.schemas.objects import (
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )
    from prefect.runner import Runner

    empty = flow(name="empty", log_prints=False)(_empty)
    runner = Runner(name="bench-empty", pause_on_shutdown=False, query_seconds=2.0)
    # deployed like pgtender's health: one run at a time, a new one cancelled while one runs
    limit = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    runner.add_flow(empty, name="empty", concurrency_limit=limit)
    asyncio.run(runner.start())


def submit_empty() -> None:
    """What `pgtender run` does, for the empty deployment: submit, follow it to its end, exit."""
    from flows.core.engine import Kind
    from flows.edge import dispatch

    with dispatch.using_api(os.environ["BENCH_API_URL"]):
        verdict = dispatch.through_deployment("empty", {})  # the deployment empty/empty
    print(verdict.text("empty"))
    sys.exit(0 if verdict.kind is Kind.DONE else 3)


def _outcome(out: str) -> str:
    """The command's outcome line: its last line (the logs come before it)."""
    lines = out.strip().splitlines()
    return lines[-1] if lines else ""


def _through_the_server(outcome: str) -> bool:
    """The outcome of a run that went through the server names its flow run."""
    return outcome.startswith("health: ") and ("[flow run " in outcome or "run already going" in outcome)


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=600)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"process exited early with {process.returncode}")
        if path.exists():
            return
        time.sleep(0.5)
    raise SystemExit(f"{path} did not appear within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--serve-empty", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--submit-empty", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_empty:
        serve_empty()
        return
    if args.submit_empty:
        submit_empty()
        return

    import psycopg
    from psycopg import conninfo, sql

    server = os.environ.get("PGTENDER_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"pgtender_bench_cli_{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="pgtender-bench-cli-"))
    state_dir, home = scratch / "state", scratch / "home"
    home.mkdir()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:  # also when the bench stops early (SystemExit): no scratch database left
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    atexit.register(drop)
    env = {
        **os.environ,
        "PGTENDER_DATABASE_URL": conninfo.make_conninfo(server, dbname=name),
        "PGTENDER_STATE_DIR": str(state_dir),
        "HOME": str(home),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }
    env.pop("PREFECT_API_URL", None)
    up: subprocess.Popen[bytes] | None = None
    empty: subprocess.Popen[bytes] | None = None
    times: dict[str, list[float]] = {"health": [], "empty": [], "plain": []}
    try:
        started = time.perf_counter()
        up_log = (scratch / "up.log").open("wb")
        up = subprocess.Popen(
            [PGTENDER, "up", "--demo-days", "7"],
            env=env,
            stdout=up_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        api_file = state_dir / "prefect" / "api.json"
        try:
            _wait_for(api_file, up, 300)
        except SystemExit:
            print((scratch / "up.log").read_text()[-3000:])
            raise
        api_url = json.loads(api_file.read_text())["api_url"]
        time.sleep(8)  # the first capacity run and the deployments' registration
        print(f"up: API at {api_url} after {time.perf_counter() - started:.1f} s")
        empty_env = {**env, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(state_dir / "prefect")}
        empty = subprocess.Popen(
            [sys.executable, __file__, "--serve-empty"],
            env=empty_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(10)  # the empty deployment registered
        submit_env = {**env, "BENCH_API_URL": api_url, "PREFECT_HOME": str(state_dir / "prefect")}
        for i in range(args.repeat + 1):  # round 0 warms the server's caches; not counted
            t_health, rc, out = _timed([PGTENDER, "run", "health"], env)
            if not _through_the_server(_outcome(out)):
                raise SystemExit(f"pgtender run health did not go through the server:\n{out}")
            t_empty, rc_empty, out_empty = _timed([sys.executable, __file__, "--submit-empty"], submit_env)
            if rc_empty != 0:
                raise SystemExit(f"the empty run failed:\n{out_empty}")
            if i:
                times["health"].append(t_health)
                times["empty"].append(t_empty)
            print(f"round {i}: health {t_health:.2f} s (exit {rc}), empty {t_empty:.2f} s")
    finally:
        for proc in (empty, up):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    try:
        for i in range(args.repeat):
            t_plain, rc, out = _timed([PGTENDER, "run", "health"], env)
            outcome = _outcome(out)
            if not outcome.startswith("health: ") or _through_the_server(outcome):
                raise SystemExit(f"expected the plain path (no flow run):\n{out}")
            times["plain"].append(t_plain)
            print(f"plain {i + 1}: {t_plain:.2f} s (exit {rc})")
        leaked = (home / ".prefect").exists()
    finally:
        drop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    print(f"pgtender run health via up: median {med['health']:.2f} s  (min {min(times['health']):.2f})")
    print(f"empty flow run, same way:   median {med['empty']:.2f} s  (min {min(times['empty']):.2f})")
    print(f"pgtender run health, no server (plain core): median {med['plain']:.2f} s")
    print(f"~/.prefect written: {'yes' if leaked else 'no'}")
    ratio = med["health"] / med["empty"]
    print(f"ratio health / empty: {ratio:.2f}x (target <= 1.5x)")
    sys.exit(0 if ratio <= 1.5 and not leaked else 1)


if __name__ == "__main__":
    main()
