"""The upkeep pass as plain functions over a connection: survey, ANALYZE, rebuilds (one at a time,
only inside the window), record, alerts. ``upkeep_pass`` is the whole pass in one call (tests,
benchmarks); the flow calls the same steps as tasks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from flows.alerts import alerting
from flows.core import clock
from flows.core.logs import get_logger
from flows.core.policy.settings import Policy
from flows.core.policy.upkeep import UpkeepPolicy
from flows.upkeep import results, window
from flows.upkeep.rebuild import Rebuilt, rebuild
from flows.upkeep.statistics import Analyzed, analyze_parent
from flows.upkeep.survey import Survey, survey

Conn = psycopg.Connection[tuple[Any, ...]]
JOB = "upkeep"


def rebuild_plan(s: Survey) -> list[tuple[str, str, str]]:
    """(index, table, kind) in the order they are worked on: leftover copies first (dropping them is
    quick and each costs every write), then invalid indexes, then bloated ones, smallest first (the
    window fits the most of them)."""
    leftovers = [(i.index, i.table, "leftover") for i in s.invalid if i.kind == "leftover"]
    invalid = [(i.index, i.table, "invalid") for i in s.invalid if i.kind == "rebuild"]
    bloated = [(b.index, b.table, "bloated") for b in sorted(s.bloated, key=lambda b: (b.bytes, b.index))]
    return leftovers + invalid + bloated


def analyze_all(conn: Conn, s: Survey, policy: UpkeepPolicy) -> list[Analyzed]:
    """ANALYZE every parent that needs it, one transaction each; a failure does not stop the others."""
    log = get_logger(job=JOB)
    return [analyze_parent(conn, item, schema=policy.schema_name, policy=policy, log=log) for item in s.due]


def rebuild_one(conn: Conn, index: str, table: str, kind: str, policy: UpkeepPolicy) -> Rebuilt:
    """One rebuild, if the window is open now (deferred otherwise), cancelled when it closes."""
    now = clock.db_now(conn)
    closes = window.closes_at(policy.window, now)
    if closes is None:
        opens = window.next_opening(policy.window, now).isoformat(timespec="minutes")
        return Rebuilt(
            index=index,
            table=table,
            kind=kind,
            status="deferred",
            bytes_before=0,
            error=f"outside the window {policy.window.describe()} (opens {opens})",
        )
    return rebuild(
        conn,
        index,
        table,
        kind,
        schema=policy.schema_name,
        policy=policy,
        deadline=closes,
        log=get_logger(job=JOB),
    )


def alert(conn: Conn, s: Survey, rebuilt: list[Rebuilt], *, target: str) -> dict[str, int]:
    """Record what started failing and what was fixed (``flows.alerts.alerting``): the pages and
    resolves that became due go out after the run, outside its lock (the after-run hook)."""
    return alerting.record(conn, JOB, results.observations(s, rebuilt), target=target, complete=True)


def page_found(
    conn: Conn, s: Survey, *, target: str, policy: Policy, flow_run_id: str | None = None
) -> dict[str, int]:
    """The invalid indexes found, paged now, before the rebuilds start (they may take the rest of the
    window, and an index fixed by them would otherwise never be paged): recorded, then upkeep's due
    notices delivered, outside any transaction, each send bounded by its channel's deadline and the
    round by ``[alerts] delivery_budget_seconds``. The evaluation after the rebuilds resolves them."""
    sent = alerting.evaluate(
        conn, JOB, results.observations(s, []), target=target, policy=policy, flow_run_id=flow_run_id
    )
    alerting.log_deliveries(sent, job=JOB)
    return alerting.counts(sent)


def upkeep_pass(
    conn: Conn,
    policy: Policy,
    *,
    target: str = "default",
    now: datetime | None = None,
    dry_run: bool = False,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
    between: Callable[[], None] = lambda: None,
) -> results.Outcome:
    """The job's work in one call on one connection (no lock, no ledger: what the table-level tests
    and the benchmark use). ``dry_run`` (or the policy's): the survey only, nothing written, nobody
    paged. ``between``: called before each step."""
    upkeep = policy.upkeep
    dry_run = dry_run or upkeep.dry_run
    s = survey(conn, upkeep, now=now or clock.db_now(conn))
    out = results.Outcome(survey=s, analyzed=[], rebuilt=[], dry_run=dry_run)
    if dry_run:
        return out
    between()
    out.analyzed = analyze_all(conn, s, upkeep)
    plan = rebuild_plan(s)
    if any(kind != "bloated" for _, _, kind in plan):  # page the invalid indexes found before rebuilding
        page_found(conn, s, target=target, policy=policy, flow_run_id=flow_run_id)
    for index, table, kind in plan:
        between()
        out.rebuilt.append(rebuild_one(conn, index, table, kind, upkeep))
    between()
    results.record(conn, out, flow_run_id=flow_run_id, operation_id=operation_id)
    alert(conn, s, out.rebuilt, target=target)  # due notices wait for a delivery round (after-run hook)
    return out
