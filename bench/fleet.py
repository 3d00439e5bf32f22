"""bench/fleet: sweeping a fleet of small databases through a Prefect server and a worker.

    .venv/bin/python bench/fleet.py [--targets 50] [--naive-targets 50] [--concurrency 4]
                                    [--days 30] [--rows-per-day 1000] [--worker-limit 4] [--keep]

Creates N target databases on PGTENDER_BENCH_SERVER (default postgresql://postgres@127.0.0.1:5432/
postgres), each a copy of one migrated database with DAYS of demo data, and names them in a policy
file ([targets.tNN] url_env = ...; [fleet] concurrency). Starts a local Prefect server whose store
is a PostgreSQL database on the same server (flows.edge.prefect_store), deploys
deployments/prefect.yaml to a process work pool and starts ONE worker in another directory. Then:

  sweep      one `health` and one `partitions` flow run (no target: every target, threads inside
             the one flow run, [fleet] concurrency at once), each through the worker
  naive      the design the sweep replaces, in the same run: one flow run per target
             (run_deployment(..., target=tNN)), the worker running --worker-limit at once

For each sweep it prints:
  wall          the flow run's own wall time (Prefect start_time -> end_time: process start excluded)
  db            the sum over the targets of each target's run as its ledger row times it
                (started_at -> finished_at on the database's clock: the target's whole lifecycle,
                its SQL and the Python around it)
  ratio         wall / (db / concurrency)                         target <= 1.5
  orchestration (wall - db / concurrency) / targets, ms a target  target <= 50 ms
  where it goes the flow run's head (start -> first ledger row), the span of the targets' runs
                (and what each target spends outside its ledger row), the tail (last row -> end)
and for the naive design the wall time from the first submission to the last run's end, against
the sweep's. It counts HTTP 5xx answers and "database is locked" in the server's and the worker's
logs (target: zero). Figures are printed whatever they are; the exit status is 0 unless a run
failed to finish.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import yaml  # type: ignore[import-untyped]
from psycopg import conninfo, sql

ROOT = Path(__file__).resolve().parent.parent


def create_targets(server: str, n: int, days: int, rows_per_day: int) -> tuple[str, list[str]]:
    from flows.core import db, migrations
    from flows.demo_data import load_demo_data

    template = f"pgtender_bench_fleet_tpl_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(template)))
    with db.connect(conninfo.make_conninfo(server, dbname=template), autocommit=True) as conn:
        migrations.migrate(conn)
        load_demo_data(conn, days=days, rows_per_day=rows_per_day, seed=7)
    names = []
    with psycopg.connect(server, autocommit=True) as admin:
        for i in range(n):
            name = f"{template.replace('_tpl_', '_t')}_{i:02d}"
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            names.append(name)
    return template, names


def drop(server: str, names: list[str]) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def ledger_windows(
    server: str, dbnames: dict[str, str], job: str, flow_run_id: str
) -> dict[str, tuple[Any, Any]]:
    """Each target's run as its ledger row times it: (started_at, finished_at), the database's clock."""
    out = {}
    for target, dbname in dbnames.items():
        with psycopg.connect(conninfo.make_conninfo(server, dbname=dbname)) as conn:
            row = conn.execute(
                "SELECT started_at, finished_at FROM pgtender_operations"
                " WHERE job = %s AND flow_run_id = %s AND status <> 'started'",
                (job, flow_run_id),
            ).fetchone()
        if row is not None:
            out[target] = (row[0], row[1])
    return out


def wait(client: Any, run_ids: list[Any], timeout: float = 1800) -> list[Any]:
    deadline = time.monotonic() + timeout
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        for rid in list(pending):
            state = client.read_flow_run(rid).state
            if state is not None and state.is_final():
                pending.discard(rid)
        time.sleep(0.5)
    if pending:
        raise SystemExit(f"{len(pending)} flow run(s) did not finish")
    return [client.read_flow_run(rid) for rid in run_ids]


def run_seconds(run: Any) -> float:
    return float((run.end_time - run.start_time).total_seconds())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--naive-targets", type=int, default=None, help="default: --targets")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=1000)
    parser.add_argument("--worker-limit", type=int, default=4)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    naive_n = args.targets if args.naive_targets is None else min(args.naive_targets, args.targets)
    server = os.environ.get("PGTENDER_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")

    from flows.core.telemetry import disable_telemetry

    disable_telemetry()
    work = Path(tempfile.mkdtemp(prefix="pgtender-bench-fleet-"))
    t0 = time.perf_counter()
    template, dbnames_list = create_targets(server, args.targets, args.days, args.rows_per_day)
    print(
        f"{args.targets} targets ({args.days} days x {args.rows_per_day} events) in {time.perf_counter() - t0:.0f} s"
    )
    dbnames = {f"t{i:02d}": name for i, name in enumerate(dbnames_list)}
    policy = work / "pgtender.toml"
    lines = [f"[fleet]\nconcurrency = {args.concurrency}\n"]
    env = dict(os.environ)
    for target, dbname in dbnames.items():
        lines.append(f'[targets.{target}]\nurl_env = "BENCH_{target.upper()}_URL"\n')
        env[f"BENCH_{target.upper()}_URL"] = conninfo.make_conninfo(server, dbname=dbname)
    policy.write_text("\n".join(lines), encoding="utf-8")
    env["PGTENDER_CONFIG"] = str(policy)
    env.pop("PGTENDER_DATABASE_URL", None)
    env["PGTENDER_STATE_DIR"] = str(work / "state")

    from flows.edge import prefect_store
    from flows.edge.prefect_server import start_local_server

    store_db = f"pgtender_bench_prefect_{uuid.uuid4().hex[:6]}"
    store = prefect_store.prepare(server, dbname=store_db)
    print(f"Prefect store: {store.description}")
    prefect_server = start_local_server(work / "server", database_url=store.url)
    env["PREFECT_API_URL"] = prefect_server.api_url
    env["PREFECT_HOME"] = str(work / "prefect-home")
    os.environ["PREFECT_API_URL"] = prefect_server.api_url
    worker = None
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.deployments import run_deployment

        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name="pgtender", type="process"))
        # the naive design's deployments: the same flows with no deployment concurrency limit (the
        # real ones allow one run at a time: health's would cancel the other targets' runs)
        spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text("utf-8"))
        for d in [d for d in spec["deployments"] if d["name"] in ("health", "partitions")]:
            spec["deployments"].append(
                {**d, "name": f"{d['name']}-naive", "schedules": [], "concurrency_limit": None}
            )
        naive_file = work / "prefect.naive.yaml"
        naive_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
        deploy = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file"]
        subprocess.run([*deploy, str(naive_file)], cwd=ROOT, env=env, check=True, capture_output=True)
        elsewhere = work / "worker"
        elsewhere.mkdir()
        worker_log = (elsewhere / "worker.log").open("wb")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                "pgtender",
                "--limit",
                str(args.worker_limit),
            ],
            cwd=elsewhere,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with get_client(sync_client=True) as client:
            # warm-up: the first flow run pays imports and the deployment's first pull
            wait(client, [run_deployment("health/health", parameters={"target": "t00"}, timeout=0).id])
            figures: dict[str, dict[str, float]] = {}
            for job in ("health", "partitions"):
                started = time.perf_counter()
                run = wait(client, [run_deployment(f"{job}/{job}", timeout=0).id])[0]
                submitted_to_end = time.perf_counter() - started
                windows = ledger_windows(server, dbnames, job, str(run.id))
                wall = run_seconds(run)
                db_s = sum((end - start).total_seconds() for start, end in windows.values())
                ideal = db_s / args.concurrency
                figures[job] = {"wall": wall, "db": db_s, "ideal": ideal, "end_to_end": submitted_to_end}
                print(
                    f"sweep {job:<10} {run.state.name}: {len(windows)}/{args.targets} targets recorded;"
                    f" flow run wall {wall:.2f} s (submit->end {submitted_to_end:.1f} s); sum of targets' runs"
                    f" {db_s:.2f} s; ratio wall/(sum/concurrency) {wall / ideal:.2f}x;"
                    f" orchestration {(wall - ideal) / args.targets * 1000:.0f} ms a target"
                )
                # where the rest goes: before the first target's ledger row, after the last one's,
                # and between them (each target's run outside its ledger row, and the threads' idle)
                first = min(start for start, _ in windows.values())
                last = max(end for _, end in windows.values())
                head = (first - run.start_time).total_seconds()
                tail = (run.end_time - last).total_seconds()
                span = (last - first).total_seconds()
                print(
                    f"  where the wall time goes: {head:.2f} s from the flow run's start to the first target's"
                    f" ledger row (the flow engine, the targets resolved, the first sessions); {span:.2f} s"
                    f" from there to the last target's end ({span / ideal:.2f}x the sum/concurrency:"
                    f" {(span - ideal) * args.concurrency / args.targets * 1000:.0f} ms a target outside"
                    f" its ledger row, per thread); {tail:.2f} s after it (alerts, the fleet artifact, the"
                    f" final state)"
                )
            for job in ("health", "partitions"):
                chosen = list(dbnames)[:naive_n]
                started = time.perf_counter()
                ids = [
                    run_deployment(f"{job}/{job}-naive", parameters={"target": t}, timeout=0).id
                    for t in chosen
                ]
                runs = wait(client, ids)
                naive_wall = time.perf_counter() - started
                states = {r.state.name for r in runs}
                per = sum(run_seconds(r) for r in runs) / len(runs)
                sweep_share = figures[job]["end_to_end"] * naive_n / args.targets
                print(
                    f"naive {job:<10} {len(chosen)} flow runs ({sorted(states)}), worker limit {args.worker_limit}:"
                    f" {naive_wall:.1f} s submit->last end, {per:.2f} s a flow run;"
                    f" the sweep took {figures[job]['end_to_end']:.1f} s for {args.targets} targets"
                    f" -> naive/sweep {naive_wall / sweep_share:.1f}x per target"
                )
    finally:
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=30)
        prefect_server.stop()
        logs = prefect_server.log_path.read_text(errors="replace")
        worker_file = work / "worker" / "worker.log"
        if worker_file.exists():
            logs += worker_file.read_text(errors="replace")
        locked = logs.count("database is locked")
        five = len(re.findall(r'" 5\d\d ', logs)) + len(re.findall(r"HTTP/1\.1 5\d\d", logs))
        print(f"Prefect API: {five} HTTP 5xx, {locked} 'database is locked' in the server and worker logs")
        if not args.keep:
            drop(server, [*dbnames_list, template, store_db])
        else:
            print(f"kept: {work}, databases {template} ..")
    return 0


if __name__ == "__main__":
    sys.exit(main())
