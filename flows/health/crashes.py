"""The health job's crash watchdog: runs of every job that died without finishing, found within
minutes — not when their own job runs next (a day later for quality, a week for retention).

A run is dead when the database session that started its ledger row is gone (the process was
killed, its machine lost) or when Prefect says its flow run ended without it finishing the row
(Crashed by the heartbeat automation: ``flows/edge/automations.py``). Each such row is marked
``abandoned`` (its counts, written as its steps committed, are kept) and its job's ``job.<job>``
check is recorded failing, which pages once: the ``UPDATE … WHERE status = 'started'`` hands each
row to exactly one finder (this watchdog or the job's next run), and the alert state pages a failing
check once, delivered by the health run's after-run hook (the outbox, ``flows/alerts/hooks.py``);
the job's next run that gets through resolves it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg

from flows.alerts import alerting, hooks
from flows.core import ledger
from flows.core.db import load_sql
from flows.core.engine import Run
from flows.core.logs import get_logger

Conn = psycopg.Connection[tuple[Any, ...]]
EndedRuns = Callable[[Sequence[str]], dict[str, str]]  # flow run ids -> final state name of those ended


def abandon_crashed(
    conn: Conn, *, jobs: Sequence[str], found_by: UUID, ended_runs: EndedRuns
) -> dict[str, list[ledger.Abandoned]]:
    """Mark the dead runs of ``jobs`` abandoned; job -> what was found (each row found once)."""
    found: dict[str, list[ledger.Abandoned]] = {}
    params = {"jobs": list(jobs), "found_by": found_by}
    for job, *row in conn.execute(load_sql("queries/health/abandon_dead_runs.sql"), params).fetchall():
        operation_id, started_at, flow_run_id, found_at, reason = row
        found.setdefault(job, []).append(
            ledger.Abandoned(
                operation_id=operation_id,
                started_at=started_at,
                flow_run_id=flow_run_id,
                found_at=found_at,
                reason=reason,
            )
        )
    candidates = conn.execute(load_sql("queries/health/open_runs.sql"), params).fetchall()
    ended = ended_runs([str(flow_run_id) for _, _, flow_run_id in candidates]) if candidates else {}
    for job, operation_id, flow_run_id in candidates:
        state = ended.get(str(flow_run_id))
        if state is None:
            continue
        reason = (
            f"abandoned: its flow run {flow_run_id} ended {state} without finishing the run;"
            f" found by the health job's crash watchdog (operation {found_by})"
        )
        gone = ledger.abandon(conn, operation_id, reason)
        if gone is not None:
            found.setdefault(job, []).append(gone)
    return found


def page_crashes(conn: Conn, run: Run) -> dict[str, int]:
    """Every other job's dead runs abandoned, and each job with one recorded failing
    (``job.<job>``): its page is due, and goes out after the health run with the rest of the
    target's outbox (``flows/alerts/hooks.py``), once. Called inside the health run's alerts step
    (no task run of its own: a Prefect task run costs tens of milliseconds, and health runs every
    5 minutes on every target)."""
    jobs = [job for job in run.registry.names() if job != run.job]
    log = get_logger(job=run.job)
    found = abandon_crashed(
        conn, jobs=jobs, found_by=run.operation_id, ended_runs=run.orchestrator.ended_runs
    )
    pages_due = 0
    for job, gone in sorted(found.items()):
        for dead in gone:
            log.warning(
                "a run of another job was abandoned",
                crashed_job=job,
                abandoned_operation_id=str(dead.operation_id),
                started_at=dead.started_at.isoformat(),
                reason=dead.reason,
            )
        crash = alerting.job_observation(job, hooks.crash_line(job, gone))
        pages_due += alerting.record(conn, f"job.{job}", [crash], target=run.target.name)["pages_due"]
    return {"crashed_runs_found": sum(len(g) for g in found.values()), "crash_pages_due": pages_due}
