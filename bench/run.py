"""Every benchmark in one command, at a size that fits this 2-core machine in 16-25 minutes,
written to ``bench/results/<UTC date>-<commit>.json``.

    .venv/bin/python bench/run.py [--only partitions,quality,...] [--out DIR]

The file holds the date, the commit (and whether the tree was dirty), the machine (cores, memory,
PostgreSQL version, commit latency and load average measured on the spot, before and after) and
every figure: the partitions bench's figures as numbers (it runs in this process), the other
benches' complete output (they run as subprocesses, their own way), each with its exit status and
wall time. The README's performance table quotes the latest file; tests/test_bench_results.py
checks that every ratio in that table appears in it.

Uses PGTENDER_BENCH_DSN / PGTENDER_BENCH_SERVER (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

SERVER = os.environ.get("PGTENDER_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

# name -> the arguments sized for this machine (the whole set: 16-25 minutes, as the disk goes)
PARTITIONS_ARGS = ["--trials", "3", "--seconds", "5", "--rescue-rows", "600000", "--prefect"]
SUBPROCESS_BENCHES: dict[str, list[str]] = {
    "quality": ["bench/quality.py", "--rows", "300000", "--repeat", "3"],
    "retention": ["bench/retention.py", "--sizes", "1000000", "--trials", "3"],
    "backfill": ["bench/backfill.py", "--days", "90", "--rows-per-day", "20000", "--repeat", "2"],
    "health": ["bench/health.py", "--days", "3", "--rows-per-day", "200000", "--runs", "10"],
    # 50 targets swept; the naive design (a flow run per target, a process each) on 6 of them: its
    # cost per target is what the comparison needs, and 50 of them would take 10 minutes alone
    "fleet": ["bench/fleet.py", "--targets", "50", "--naive-targets", "6"],
    "cli": ["bench/cli.py", "--repeat", "3"],
    # the planner before/after upkeep, writers beside REINDEX CONCURRENTLY of a bloated index (4M
    # rows, half deleted: a rebuild of ~2 s, long enough for its p95; 8 rounds of 4 WAL settings, the
    # median of the rounds is the figure) and beside a plain scan (the floor), a pass with nothing
    # to do over 450 partitions
    "upkeep": [
        "bench/upkeep.py",
        "--rows",
        "300000",
        "--bloat-rows",
        "4000000",
        "--deleted-pct",
        "50",
        "--rounds",
        "8",
        "--passes",
        "7",
    ],
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def commit_latency_ms(samples: int = 300) -> dict[str, float]:
    """Single-row INSERT commits on one connection: what one durable commit costs right now."""
    with psycopg.connect(SERVER, autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS pgtender_bench_commit_latency (x int)")
        times = []
        try:
            for _ in range(samples):
                t0 = time.perf_counter()
                c.execute("INSERT INTO pgtender_bench_commit_latency VALUES (1)")
                times.append((time.perf_counter() - t0) * 1000)
        finally:
            c.execute("DROP TABLE pgtender_bench_commit_latency")
    ordered = sorted(times)
    return {
        "samples": samples,
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
    }


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    with psycopg.connect(SERVER, autocommit=True) as c:
        row = c.execute("SELECT version(), current_setting('synchronous_commit'), current_setting('fsync')")
        version, sync_commit, fsync = row.fetchone() or ("?", "?", "?")
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "postgresql": version,
        "synchronous_commit": sync_commit,
        "fsync": fsync,
        "commit_latency": commit_latency_ms(),
        "load_average": list(os.getloadavg()),
    }


def run_partitions(args: list[str]) -> dict[str, Any]:
    import partitions as bench_partitions

    t0 = time.perf_counter()
    figures = bench_partitions.run(bench_partitions.parse_args(args))
    wall = round(time.perf_counter() - t0, 1)
    command = "python bench/partitions.py " + " ".join(args)
    return {"command": command, "wall_s": wall, "exit": 0, "figures": figures}


def _stop_group(pgid: int, sig: int) -> None:
    """Signal what is left of a bench's process group (a Prefect server, a worker it started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def run_subprocess(argv: list[str], timeout: float) -> dict[str, Any]:
    """One bench in a process group of its own: whatever it started and left behind (a Prefect
    server of a bench that timed out) is stopped with it, not left to load the benches after it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        _stop_group(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            _stop_group(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        code, err = -1, f"timed out after {timeout:.0f} s"
    finally:  # also on Ctrl-C: the group has its own session and would not hear it
        _stop_group(proc.pid, signal.SIGTERM)
    print(out, end="")
    return {
        "command": "python " + " ".join(argv),
        "wall_s": round(time.perf_counter() - t0, 1),
        "exit": code,
        "output": out.splitlines(),
        "stderr_tail": err.splitlines()[-5:] if code else [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default="", help="comma-separated: partitions," + ",".join(SUBPROCESS_BENCHES)
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per subprocess bench")
    args = parser.parse_args()
    wanted = [w for w in args.only.split(",") if w] or ["partitions", *SUBPROCESS_BENCHES]
    started = datetime.now(UTC)
    commit = git("rev-parse", "--short=12", "HEAD")
    result: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine(),
        "note": "2-core machine shared with other work: absolute times are noisy; ratios are measured"
        " against baselines interleaved in the same run",
        "benches": {},
    }
    for name in wanted:
        print(f"\n=== {name}", flush=True)
        if name == "partitions":
            result["benches"][name] = run_partitions(PARTITIONS_ARGS)
        else:
            result["benches"][name] = run_subprocess(SUBPROCESS_BENCHES[name], args.timeout)
    result["machine"]["load_average_after"] = list(os.getloadavg())
    result["wall_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{started:%Y-%m-%dT%H%M}-{commit}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(
        f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} in {result['wall_s']:.0f} s"
    )
    return 0 if all(b["exit"] == 0 for b in result["benches"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
