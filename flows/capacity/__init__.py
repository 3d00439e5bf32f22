"""Capacity: sizes and rows of every table, partition and view; growth and projections.

The daily snapshot records table/index/TOAST/total bytes and row counts (exact below a threshold,
the planner estimate above it) per table, partition and materialized view, and the database size.
From the recorded history a robust (Theil-Sen) fit gives each table's and the database's growth
per day and the day it reaches its configured threshold; both are written to
``capacity_planning_metrics`` with the horizon and threshold used. Plain functions take a
connection and return data; the Prefect flow at the bottom is thin.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from flows.capacity.measure import measure_and_record
from flows.capacity.projection import Projection, day_end, history, project, project_and_record, theil_sen
from flows.capacity.seed import comparison_markdown, seed_comparison
from flows.core import clock
from flows.core.engine import (
    Cron,
    Done,
    JobSpec,
    Outcome,
    Params,
    Plan,
    ReplayContext,
    Replayed,
    Replays,
    Run,
    step,
)
from flows.core.logs import get_logger

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "capacity"

__all__ = [
    "SPEC",
    "Projection",
    "comparison_markdown",
    "day_end",
    "history",
    "measure_and_record",
    "project",
    "project_and_record",
    "replay",
    "seed_comparison",
    "theil_sen",
]


def replay(conn: Conn, day: date | None, ctx: ReplayContext) -> Replayed:
    """Backfill: projections as of the day's end from the history up to it; today also snapshots."""
    assert day is not None, "capacity replays one day"
    policy = ctx.policy.capacity
    snapshots = 0
    if day >= ctx.now.date():
        as_of = ctx.now.replace(microsecond=0)
        snapshots = measure_and_record(
            conn,
            exact_count_max_rows=policy.exact_count_max_rows,
            flow_run_id=ctx.flow_run_id,
            operation_id=ctx.operation_id,
        )
    else:
        as_of = day_end(day)
    written, projections = project_and_record(
        conn, policy=policy, now=as_of, flow_run_id=ctx.flow_run_id, operation_id=ctx.operation_id
    )
    soon = [p for p in projections if p.within_horizon]
    counts = {"snapshot_metrics": snapshots, "projection_metrics": written, "projections": len(projections)}
    if not projections:
        return Replayed(False, "no projection: not enough history up to this day", counts)
    detail = f"{len(projections)} projections"
    if soon:
        detail += f", {len(soon)} reach their threshold within the horizon"
    return Replayed(False, detail, counts)


@step("capacity-snapshot")
def snapshot_step(run: Run) -> int:
    with run.connection() as conn:
        return measure_and_record(
            conn,
            exact_count_max_rows=run.policy.capacity.exact_count_max_rows,
            flow_run_id=run.flow_run_id,
            operation_id=run.operation_id,
        )


@step("capacity-projection")
def projection_step(run: Run) -> dict[str, Any]:
    with run.connection() as conn:
        written, projections = project_and_record(
            conn,
            policy=run.policy.capacity,
            now=clock.db_now(conn).replace(microsecond=0),
            flow_run_id=run.flow_run_id,
            operation_id=run.operation_id,
        )
    comparison = seed_comparison(projections)
    return {
        "written": written,
        "projected": len(projections),
        "within_horizon": [
            {"resource": p.resource_name, "metric": p.metric_name, "reaches_at": p.reaches_at.isoformat()}
            for p in projections
            if p.within_horizon and p.reaches_at is not None
        ],
        "comparison": comparison,
        "markdown": comparison_markdown(comparison, projections),
    }


def capacity_run(run: Run) -> Outcome:
    """The job's work: snapshot, projections, the comparison artifact."""
    snapshot_written = snapshot_step(run)
    run.record(snapshot_metrics=snapshot_written)
    projected = projection_step(run)
    written = snapshot_written + projected["written"]
    run.record(
        metrics_written=written,
        projections=projected["projected"],
        thresholds_within_horizon=len(projected["within_horizon"]),
    )
    run.artifact(
        "markdown",
        markdown=projected["markdown"],
        key="capacity-projection",
        description="Observed growth vs the seed's storage projections; thresholds within the horizon",
    )
    get_logger(job=JOB).info(
        "capacity recorded",
        metrics=written,
        projections=projected["projected"],
        within_horizon=projected["within_horizon"],
    )
    result = {
        "metrics_written": written,
        "projections": projected["projected"],
        "within_horizon": projected["within_horizon"],
        "comparison": projected["comparison"],
    }
    return Done(result=result, message=f"{written} measurements, {projected['projected']} projections")


class CapacityParams(Params):
    """The capacity job takes no parameters."""


SPEC = JobSpec(
    name=JOB,
    description="Daily capacity snapshot, growth fits and projections into capacity_planning_metrics.",
    params=CapacityParams,
    plan=lambda planning, params: Plan(work=capacity_run),
    schedule=Cron("0 2 * * *"),
    tags=("maintenance", "monitoring"),
    replay=Replays(replay, default=True),
)
