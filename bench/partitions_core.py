"""The maintenance core (part 1 of bench/partitions.py): pg_partman, hand-written DDL, the raw DDL
floor and pgtender doing the same work, interleaved so that a noisy machine hurts all alike.

Each trial clones one database per side from the same template (``--tables`` tables with DEFAULT,
the current and the next month). The tables are cut into ``chunks`` equal slices; slice by slice,
every side brings its copy of the slice to the same horizon (``months`` more monthly partitions a
table), the sides' order rotating from slice to slice and trial to trial. A side's time is the sum
over its slices: each slice is one pg_partman ``run_maintenance_proc`` call (only that slice's
tables have automatic maintenance on) and one pgtender ``maintain_all`` (a policy of that slice), so
both pay their fixed per-run cost once per slice. Then the no-op passes over all the tables,
alternating pg_partman and pgtender ``noops`` times.

Equal work is checked, not assumed: every side must end with the same partitions per table and the
same highest bound, or the bench stops with the counts.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import psycopg
from partitions_common import (
    clone,
    drop_db,
    dsn,
    month,
    partition_of,
    partitions_per_table,
    policy,
    setup_plain,
    table_name,
    timed,
)
from psycopg import sql

from flows import partitions
from flows.core.partitioning import intervals

SIDES = ("partman", "hand", "floor", "ours")
LABELS = {
    "partman": "pg_partman run_maintenance_proc",
    "hand": "hand-written PARTITION OF",
    "floor": "raw DDL floor (LIKE + ATTACH)",
    "ours": "pgtender maintain_all",
}


def _setup_partman(c: psycopg.Connection[Any], n_tables: int, months: int) -> None:
    for i in range(n_tables):
        c.execute(
            "SELECT partman.create_parent(%s, 'ts', 'native', 'monthly', p_premake := 1,"
            " p_start_partition := %s, p_jobmon := false)",
            (f"public.{table_name(i)}", month(0).strftime("%Y-%m-%d")),
        )
    # premake P keeps partitions through current + P (pg_partman 4.7.2): the same horizon as
    # pgtender's premake P and the hand-written months 2 .. months + 1
    c.execute(
        "UPDATE partman.part_config SET premake = %s, infinite_time_partitions = true,"
        " automatic_maintenance = 'off'",
        (months + 1,),
    )


def _only(c: psycopg.Connection[Any], chunk: list[int] | None) -> None:
    """pg_partman maintains only ``chunk`` (None: every table) on its next run (not timed)."""
    names = None if chunk is None else [f"public.{table_name(i)}" for i in chunk]
    c.execute(
        "UPDATE partman.part_config SET automatic_maintenance = CASE"
        " WHEN %(names)s::text[] IS NULL OR parent_table = ANY(%(names)s::text[]) THEN 'on' ELSE 'off' END",
        {"names": names},
    )


def _ddl(kind: str, i: int, months: int) -> sql.Composable:
    t = table_name(i)
    if kind == "hand":
        return sql.SQL("; ").join(partition_of(t, m) for m in range(2, 2 + months))
    ddl: list[sql.Composable] = []
    for m in range(2, 2 + months):
        new = sql.Identifier(intervals.partition_name(t, month(m)))
        ddl.append(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING IDENTITY)").format(
                new, sql.Identifier(t)
            )
        )
        ddl.append(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(t), new, sql.Literal(month(m)), sql.Literal(month(m + 1))
            )
        )
    return sql.SQL("; ").join(ddl)


def core_trial(
    template: str, n_tables: int, months: int, chunks: int, noops: int, trial: int, use_partman: bool
) -> dict[str, dict[str, Any]]:
    sides = [s for s in SIDES if use_partman or s != "partman"]
    dbs = {s: clone(template, s) for s in sides}
    conns: dict[str, psycopg.Connection[Any]] = {}
    try:
        for s in sides:
            if s != "partman":
                setup_plain(dbs[s], n_tables)
            conns[s] = psycopg.connect(dsn(dbs[s]), autocommit=True)
        if use_partman:
            _setup_partman(conns["partman"], n_tables, months)
        before = {s: partitions_per_table(dbs[s]) for s in sides}
        slices = [list(range(n_tables))[k::chunks] for k in range(chunks)]
        out: dict[str, dict[str, Any]] = {s: {"s": 0.0, "noop": []} for s in sides}

        def work(side: str, chunk: list[int]) -> Callable[[], Any]:
            c = conns[side]
            if side == "partman":
                return lambda: c.execute("CALL partman.run_maintenance_proc(p_jobmon := false)")
            if side == "ours":
                pol = policy(chunk, months + 1)
                return lambda: partitions.maintain_all(c, pol)

            def ddl() -> None:
                for i in chunk:
                    with c.transaction():
                        c.execute(_ddl(side, i, months))

            return ddl

        for k, chunk in enumerate(slices):
            shift = (k + trial) % len(sides)
            for side in sides[shift:] + sides[:shift]:
                if side == "partman":
                    _only(conns["partman"], chunk)
                out[side]["s"] += timed(work(side, chunk))
        if use_partman:
            _only(conns["partman"], None)
        noop_sides = [s for s in ("partman", "ours") if s in sides]
        full = policy(n_tables, months + 1)
        for r in range(noops):
            for side in noop_sides[r % 2 :] + noop_sides[: r % 2]:
                if side == "ours":
                    out[side]["noop"].append(timed(lambda: partitions.maintain_all(conns["ours"], full)))
                else:
                    out[side]["noop"].append(timed(work("partman", [])))
        after = {s: partitions_per_table(dbs[s]) for s in sides}
        for s in sides:
            out[s]["created"] = sum(n for n, _ in after[s].values()) - sum(n for n, _ in before[s].values())
        reference = after[sides[-1]]
        for s in sides:
            if after[s] != reference or out[s]["created"] != n_tables * months:
                raise SystemExit(
                    f"unequal work: {s} created {out[s]['created']} partitions (every side must create"
                    f" {n_tables} x {months}); per table {after[s]} vs {reference}"
                )
        return out
    finally:
        for c in conns.values():
            c.close()
        for db in dbs.values():
            drop_db(db)


def core_bench(template: str, args: argparse.Namespace, use_partman: bool) -> dict[str, Any]:
    trials = [
        core_trial(template, args.tables, args.months, args.chunks, args.noops, t, use_partman)
        for t in range(args.trials)
    ]
    sides = list(trials[0])
    times = {s: [t[s]["s"] for t in trials] for s in sides}
    noops = {s: [statistics.median(t[s]["noop"]) for t in trials] for s in sides if trials[0][s]["noop"]}
    med = {s: statistics.median(v) for s, v in times.items()}
    med_noop = {s: statistics.median(v) for s, v in noops.items()}
    created = trials[0][sides[0]]["created"]
    base = "partman" if use_partman else "floor"
    fig: dict[str, Any] = {
        "tables": args.tables,
        "months": args.months,
        "chunks": args.chunks,
        "partitions_per_side": created,
        "trials_s": {s: [round(x, 4) for x in v] for s, v in times.items()},
        "median_s": {s: round(v, 4) for s, v in med.items()},
        "ms_per_partition": {s: round(v / created * 1000, 3) for s, v in med.items()},
        "noop_trials_s": {s: [round(x, 4) for x in v] for s, v in noops.items()},
        "noop_median_s": {s: round(v, 4) for s, v in med_noop.items()},
        "ratios": {f"{s}_vs_{base}": round(med[s] / med[base], 2) for s in sides if s != base},
    }
    fig["ratios"]["ours_vs_floor"] = round(med["ours"] / med["floor"], 2)
    if use_partman:
        fig["ratios"]["ours_noop_vs_partman_noop"] = round(med_noop["ours"] / med_noop["partman"], 2)
        fig["per_trial_ratios"] = {
            "ours_vs_partman": [
                round(o / p, 2) for o, p in zip(times["ours"], times["partman"], strict=True)
            ],
            "ours_noop_vs_partman_noop": [
                round(o / p, 2) for o, p in zip(noops["ours"], noops["partman"], strict=True)
            ],
        }
    print_core(fig, args, base)
    return fig


def print_core(fig: dict[str, Any], args: argparse.Namespace, base: str) -> None:
    med, per, ratios = fig["median_s"], fig["ms_per_partition"], fig["ratios"]
    print(
        f"maintenance core: {args.tables} tables x {args.months} new monthly partitions on every side"
        f" ({fig['partitions_per_side']} each, checked), {args.chunks} interleaved slices;"
        f" median of {args.trials} trials"
    )
    for s in med:
        ratio = "1.00x" if s == base else f"{ratios[f'{s}_vs_{base}']:.2f}x"
        target = "  (target <= 0.85x)" if s == "ours" and base == "partman" else ""
        print(f"  {LABELS[s]:<34} {med[s]:8.3f} s  {per[s]:7.2f} ms/partition  {ratio}{target}")
    print(f"  pgtender / raw DDL floor: {ratios['ours_vs_floor']:.2f}x")
    noop = fig["noop_median_s"]
    if "partman" in noop:
        print(f"  pg_partman no-op pass              {noop['partman']:8.3f} s  1.00x")
        r = ratios["ours_noop_vs_partman_noop"]
        print(f"  pgtender no-op pass                {noop['ours']:8.3f} s  {r:.2f}x  (target <= 0.5x)")
        print(f"  per trial: maintain_all {fig['per_trial_ratios']['ours_vs_partman']},"
              f" no-op {fig['per_trial_ratios']['ours_noop_vs_partman_noop']}")  # fmt: skip
    elif "ours" in noop:
        print(f"  pgtender no-op pass                {noop['ours']:8.3f} s")
