"""bench/identity: what "one database, one target" costs a fleet (issue 26.4).

    .venv/bin/python bench/identity.py [--targets 50] [--rounds 5]

Creates N empty databases on PGTENDER_BENCH_SERVER (default postgresql://postgres@127.0.0.1:5432/
postgres), names them in a policy ([targets.tNN] url_env = ...) and times, in the same run:

  urls      resolving the fleet with the URL comparison only (the identity probe switched off):
            the baseline every run paid before
  cold      resolving it with the probe and an empty cache: one connection and one query per
            target, up to 16 at once (what a CLI command or the first sweep of a served process pays)
  warm      resolving it again in the same process (cached for 10 minutes: a served process's sweeps)
  serial    the same probes one after the other (what the parallel probe saves)

Prints the median of --rounds rounds in ms, cold - urls per target, and the ratios cold/serial and
warm/urls. Figures are printed whatever they are; the databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import conninfo, sql


def _median_ms(fn: Callable[[], object], rounds: int, before: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(rounds):
        before()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = os.environ.get("PGTENDER_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")
    prefix = f"pgtender_bench_ident_{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}_{i:02d}" for i in range(args.targets)]
    with psycopg.connect(server, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        return _measure(server, names, args.rounds)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _measure(server: str, names: list[str], rounds: int) -> int:
    from flows.core.fleet import identity, targets
    from flows.core.policy import settings

    policy_file = Path(tempfile.mkdtemp()) / "fleet.toml"
    lines = []
    for i, name in enumerate(names):
        os.environ[f"BENCH_T{i:02d}_URL"] = conninfo.make_conninfo(server, dbname=name)
        lines.append(f"[targets.t{i:02d}]\nurl_env = 'BENCH_T{i:02d}_URL'\n")
    policy_file.write_text("\n".join(lines), encoding="utf-8")
    os.environ["PGTENDER_CONFIG"] = str(policy_file)
    os.environ.pop("PGTENDER_DATABASE_URL", None)
    current = settings.load_settings()
    policy = settings.current_policy(current)
    dsns = [conninfo.make_conninfo(server, dbname=n) for n in names]

    def resolve() -> object:
        return targets.resolve_all(current, policy)

    probe = identity.identify
    identity.identify = lambda found: [None] * len(found)  # type: ignore[assignment]
    urls = _median_ms(resolve, rounds)
    identity.identify = probe  # type: ignore[assignment]
    cold = _median_ms(resolve, rounds, before=identity.forget)
    resolve()
    warm = _median_ms(resolve, rounds)
    serial = _median_ms(lambda: [identity._ask(d) for d in dsns], rounds, before=identity.forget)
    n = len(names)
    print(f"targets            {n}")
    print(f"urls (baseline)    {urls:8.1f} ms")
    print(f"cold (probe)       {cold:8.1f} ms   {(cold - urls) / n:6.2f} ms a target over the baseline")
    print(f"warm (cached)      {warm:8.1f} ms   warm/urls {warm / urls:5.2f}x")
    print(f"serial probes      {serial:8.1f} ms   cold/serial {cold / serial:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
