"""Capacity: sizes and rows of every table, partition and view; growth and projections.

The daily snapshot records table/index/TOAST/total bytes and row counts (exact below a threshold,
the planner estimate above it) per table, partition and materialized view, and the database size.
From the recorded history a robust (Theil-Sen) fit gives each table's and the database's growth
per day and the day it reaches its configured threshold; both are written to
``capacity_planning_metrics`` with the horizon and threshold used. Plain functions take a
connection and return data; the Prefect flow at the bottom is thin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from prefect import flow
from prefect.client.schemas.objects import State
from psycopg import sql
from psycopg.types.json import Jsonb

from flows.core import clock, lifecycle, plain, runtime, settings
from flows.core.db import load_sql
from flows.core.logs import get_logger
from flows.core.metrics import Measurement, record
from flows.core.outcomes import Done, Outcome
from flows.core.replay import ReplayContext, Replayed

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "capacity"


@dataclass(frozen=True)
class Relation:
    name: str
    resource_type: str  # table | partition | view
    parent: str | None
    is_partitioned: bool
    table_bytes: int
    index_bytes: int
    total_bytes: int
    estimated_rows: float | None
    never_analyzed: bool
    toast_bytes: int = 0


def relations(conn: Conn, schema: str = "public") -> list[Relation]:
    rows = conn.execute(load_sql("queries/capacity/relations.sql"), {"schema": schema}).fetchall()
    return [
        Relation(
            r[0],
            r[1],
            r[2],
            bool(r[3]),
            int(r[4]),
            int(r[5]),
            int(r[6]),
            None if r[7] is None else float(r[7]),
            bool(r[8]),
            int(r[9] or 0),
        )
        for r in rows
    ]


def count_rows(conn: Conn, schema: str, table: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def row_counts(
    conn: Conn, rels: list[Relation], *, schema: str, exact_count_max_rows: int
) -> dict[str, tuple[int, bool]]:
    """Rows per relation: exact below the threshold (or never analyzed), the estimate above it.

    A partitioned parent is the sum of its partitions, so no table is scanned twice.
    """
    counts: dict[str, tuple[int, bool]] = {}
    for rel in rels:
        if rel.is_partitioned:
            continue
        estimate = rel.estimated_rows
        if rel.never_analyzed or estimate is None or estimate <= exact_count_max_rows:
            counts[rel.name] = (count_rows(conn, schema, rel.name), True)
        else:
            counts[rel.name] = (int(estimate), False)
    children: dict[str, list[str]] = {}
    for rel in rels:
        if rel.parent:
            children.setdefault(rel.parent, []).append(rel.name)

    def total(name: str) -> tuple[int, bool]:
        if name in counts:
            return counts[name]
        parts = [total(child) for child in children.get(name, [])]
        counts[name] = (sum(p[0] for p in parts), all(p[1] for p in parts))
        return counts[name]

    for rel in rels:
        total(rel.name)
    return counts


def snapshot(
    conn: Conn, *, exact_count_max_rows: int = 1_000_000, schema: str = "public"
) -> list[Measurement]:
    """Measure every relation of ``schema`` and the database itself."""
    rels = relations(conn, schema)
    counts = row_counts(conn, rels, schema=schema, exact_count_max_rows=exact_count_max_rows)
    out: list[Measurement] = []
    for rel in rels:
        meta: dict[str, Any] = {"parent": rel.parent} if rel.parent else {}
        rows, exact = counts[rel.name]
        out.append(
            Measurement("row_count", rel.resource_type, rel.name, rows, "rows", {**meta, "exact": exact})
        )
        out.append(Measurement("table_bytes", rel.resource_type, rel.name, rel.table_bytes, "bytes", meta))
        out.append(Measurement("index_bytes", rel.resource_type, rel.name, rel.index_bytes, "bytes", meta))
        out.append(Measurement("toast_bytes", rel.resource_type, rel.name, rel.toast_bytes, "bytes", meta))
        out.append(Measurement("total_bytes", rel.resource_type, rel.name, rel.total_bytes, "bytes", meta))
    row = conn.execute(load_sql("queries/capacity/database_size.sql")).fetchone()
    assert row is not None
    out.append(Measurement("total_bytes", "database", str(row[0]), int(row[1]), "bytes"))
    return out


def measure_and_record(
    conn: Conn, *, exact_count_max_rows: int, flow_run_id: str | None, operation_id: UUID | None
) -> int:
    measured_at = clock.db_now(conn).replace(microsecond=0)
    measurements = snapshot(conn, exact_count_max_rows=exact_count_max_rows)
    return record(
        conn, measurements, measured_at=measured_at, flow_run_id=flow_run_id, operation_id=operation_id
    )


# --- growth and projection -------------------------------------------------------------------------

PROJECTED_METRICS = ("total_bytes", "row_count")
UNITS = {"total_bytes": "bytes", "row_count": "rows"}

# The seed README's "Storage Projections" table: component -> (tables, rows/day, bytes/year).
SEED_STORAGE = {
    "Learning Events": (("learning_events",), 1_000_000, 12 * 10**9),
    "Performance Metrics": (("system_performance_metrics",), 10_000_000, 120 * 10**9),
    "Pattern Occurrences": (("pattern_occurrences",), 100_000, 1.2 * 10**9),
    "Evolution Data": (
        ("evolution_experiments", "evolution_generations", "evolution_individuals"),
        1_000,
        0.5 * 10**9,
    ),
}
SEED_TOTAL_BYTES_PER_YEAR = 134 * 10**9


@dataclass(frozen=True)
class Projection:
    metric_name: str  # total_bytes | row_count
    resource_type: str  # table | database
    resource_name: str
    points: int
    span_days: float
    slope_per_day: float
    current: float  # the fit's value now
    horizon_days: int
    projected: float  # the fit's value at now + horizon
    threshold: float | None
    reaches_at: datetime | None  # when the fit crosses the threshold (None: not growing / no threshold)
    now: datetime  # the instant the fit is anchored at

    @property
    def within_horizon(self) -> bool:
        return self.reaches_at is not None and self.reaches_at <= self.now + timedelta(days=self.horizon_days)


def theil_sen(x: Any, y: Any) -> tuple[float, float]:
    """Robust line fit: slope = median of pairwise slopes, intercept = median of y - slope x.

    Up to ~29 % of the points may be outliers (a VACUUM FULL, a bulk load) without moving the fit;
    a least-squares or two-point slope follows them.
    """
    import numpy as np  # noqa: PLC0415 - pandas brings it; only the capacity flow needs it

    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(xs), k=1)
    dx = xs[j] - xs[i]
    keep = dx != 0
    if not keep.any():
        return 0.0, float(np.median(ys))
    slope = float(np.median((ys[j] - ys[i])[keep] / dx[keep]))
    return slope, float(np.median(ys - slope * xs))


def history(conn: Conn, *, now: datetime, days: int) -> Any:
    """Recorded table and database sizes / row counts as a DataFrame (one row per measurement)."""
    import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415 - heavy, projection only

    rows = conn.execute(
        load_sql("queries/capacity/history.sql"),
        {
            "metrics": list(PROJECTED_METRICS),
            "resource_types": ["table", "database"],
            "since": now - timedelta(days=days),
            "now": now,
        },
    ).fetchall()
    return pd.DataFrame(
        rows, columns=["metric_name", "resource_type", "resource_name", "measured_at", "value"]
    )


def threshold_for(
    metric: str, resource_type: str, name: str, policy: settings.CapacityPolicy
) -> float | None:
    if metric == "total_bytes":
        if resource_type == "database":
            return float(policy.database_max_bytes)
        return float(policy.table_max_bytes.get(name, policy.table_default_max_bytes))
    limit = policy.table_max_rows.get(name)
    return None if limit is None else float(limit)


def project(frame: Any, *, now: datetime, policy: settings.CapacityPolicy) -> list[Projection]:
    """A Theil-Sen fit per (metric, resource) over the last value of each UTC day.

    Resources with fewer than ``min_history_points`` days are not projected.
    """
    import pandas as pd  # noqa: PLC0415

    if frame.empty:
        return []
    frame = frame.assign(
        measured_at=pd.to_datetime(frame["measured_at"], utc=True), value=frame["value"].astype(float)
    )
    frame = frame.assign(day=frame["measured_at"].dt.floor("D"))
    daily = (
        frame.sort_values("measured_at")
        .groupby(["metric_name", "resource_type", "resource_name", "day"], as_index=False)
        .last()
    )
    now_ts = pd.Timestamp(now)
    out: list[Projection] = []
    for (metric, rtype, name), group in daily.groupby(["metric_name", "resource_type", "resource_name"]):
        if len(group) < policy.min_history_points:
            continue
        x = (group["measured_at"] - now_ts).dt.total_seconds().to_numpy() / 86_400.0
        slope, current = theil_sen(x, group["value"].to_numpy())
        horizon = policy.projection_horizon_days
        limit = threshold_for(str(metric), str(rtype), str(name), policy)
        reaches: datetime | None = None
        if limit is not None:
            if current >= limit:
                reaches = now
            elif slope > 0:
                reaches = now + timedelta(days=(limit - current) / slope)
        out.append(
            Projection(
                str(metric),
                str(rtype),
                str(name),
                len(group),
                float(x.max() - x.min()),
                slope,
                current,
                horizon,
                current + slope * horizon,
                limit,
                reaches,
                now,
            )
        )
    return out


def record_projections(
    conn: Conn,
    projections: list[Projection],
    *,
    measured_at: datetime,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
) -> int:
    """Two rows per projection: ``<metric>_growth_per_day`` and ``<metric>_projected`` (with the
    horizon, the threshold and ``projected_at`` = when the threshold is reached, if ever)."""
    params = []
    for p in projections:
        unit = UNITS[p.metric_name]
        meta = {"method": "theil-sen", "points": p.points, "span_days": round(p.span_days, 3)}
        common = {
            "resource_type": p.resource_type,
            "resource_name": p.resource_name,
            "measured_at": measured_at,
            "flow_run_id": flow_run_id,
            "operation_id": operation_id,
        }
        params.append(
            {
                **common,
                "metric_name": f"{p.metric_name}_growth_per_day",
                "value": p.slope_per_day,
                "unit": f"{unit}/day",
                "horizon": None,
                "threshold": None,
                "projected_at": None,
                "metadata": Jsonb(meta),
            }
        )
        params.append(
            {
                **common,
                "metric_name": f"{p.metric_name}_projected",
                "value": p.projected,
                "unit": unit,
                "horizon": timedelta(days=p.horizon_days),
                "threshold": p.threshold,
                "projected_at": p.reaches_at,
                "metadata": Jsonb(
                    {**meta, "current": p.current, "reaches_threshold_within_horizon": p.within_horizon}
                ),
            }
        )
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(load_sql("queries/capacity/insert_projection.sql"), params)
    return len(params)


def seed_comparison(projections: list[Projection]) -> list[dict[str, Any]]:
    """Observed growth next to the seed README's storage projections, per component and in total."""
    growth = {(p.metric_name, p.resource_name): p.slope_per_day for p in projections}
    rows: list[dict[str, Any]] = []

    def observed(metric: str, tables: tuple[str, ...]) -> float | None:
        values = [growth[(metric, t)] for t in tables if (metric, t) in growth]
        return sum(values) if values else None

    for component, (tables, seed_rows, seed_bytes) in SEED_STORAGE.items():
        rows_day = observed("row_count", tables)
        bytes_day = observed("total_bytes", tables)
        rows.append(_comparison_row(component, seed_rows, seed_bytes, rows_day, bytes_day))
    db_bytes = next(
        (
            p.slope_per_day
            for p in projections
            if p.metric_name == "total_bytes" and p.resource_type == "database"
        ),
        None,
    )
    rows.append(_comparison_row("Total (database)", None, SEED_TOTAL_BYTES_PER_YEAR, None, db_bytes))
    return rows


def _comparison_row(
    component: str, seed_rows: int | None, seed_bytes: float, rows_day: float | None, bytes_day: float | None
) -> dict[str, Any]:
    annual = None if bytes_day is None else bytes_day * 365
    return {
        "component": component,
        "seed_rows_per_day": seed_rows,
        "observed_rows_per_day": None if rows_day is None else round(rows_day, 1),
        "seed_gb_per_year": round(seed_bytes / 1e9, 3),
        "observed_gb_per_year": None if annual is None else round(annual / 1e9, 3),
        "observed_vs_seed": None if annual is None else round(annual / seed_bytes, 4),
    }


def comparison_markdown(rows: list[dict[str, Any]], projections: list[Projection]) -> str:
    def cell(v: Any) -> str:
        return "n/a" if v is None else f"{v:,}" if isinstance(v, int | float) else str(v)

    lines = [
        "## Storage growth vs the seed's projections",
        "",
        "| component | seed rows/day | observed rows/day | seed GB/year | observed GB/year"
        " | observed / seed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['component']} | {cell(r['seed_rows_per_day'])} | {cell(r['observed_rows_per_day'])}"
        f" | {cell(r['seed_gb_per_year'])} | {cell(r['observed_gb_per_year'])}"
        f" | {cell(r['observed_vs_seed'])} |"
        for r in rows
    ]
    soon = sorted((p for p in projections if p.within_horizon), key=lambda p: p.reaches_at or datetime.max)
    lines += ["", "## Thresholds reached within the horizon", ""]
    if not soon:
        lines.append("None (or not enough history yet: projections need several days of snapshots).")
    for p in soon:
        assert p.reaches_at is not None
        lines.append(
            f"- {p.resource_type} `{p.resource_name}` {p.metric_name} reaches {p.threshold:,.0f}"
            f" on {p.reaches_at:%Y-%m-%d} (growth {p.slope_per_day:,.0f}/day)"
        )
    return "\n".join(lines)


def project_and_record(
    conn: Conn,
    *,
    policy: settings.CapacityPolicy,
    now: datetime,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
) -> tuple[int, list[Projection]]:
    projections = project(history(conn, now=now, days=policy.history_days), now=now, policy=policy)
    written = record_projections(
        conn, projections, measured_at=now, flow_run_id=flow_run_id, operation_id=operation_id
    )
    return written, projections


def day_end(day: date) -> datetime:
    """The last second of a UTC day: the fixed instant a day's projection is written at."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, seconds=-1)


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


@runtime.db_task("capacity-snapshot", JOB)
def snapshot_task(operation_id: UUID) -> int:
    policy = settings.current_policy()
    with runtime.connection() as conn:
        return measure_and_record(
            conn,
            exact_count_max_rows=policy.capacity.exact_count_max_rows,
            flow_run_id=runtime.current_flow_run_id(),
            operation_id=operation_id,
        )


@runtime.db_task("capacity-projection", JOB)
def projection_task(operation_id: UUID) -> dict[str, Any]:
    policy = settings.current_policy()
    with runtime.connection() as conn:
        written, projections = project_and_record(
            conn,
            policy=policy.capacity,
            now=clock.db_now(conn).replace(microsecond=0),
            flow_run_id=runtime.current_flow_run_id(),
            operation_id=operation_id,
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


def capacity_run(run: lifecycle.Run) -> Outcome:
    """The job's work inside the lifecycle: snapshot, projections, the comparison artifact."""
    snapshot_written = snapshot_task(run.operation_id)
    projected = projection_task(run.operation_id)
    written = snapshot_written + projected["written"]
    run.counts.update(
        metrics_written=written,
        snapshot_metrics=snapshot_written,
        projections=projected["projected"],
        thresholds_within_horizon=len(projected["within_horizon"]),
    )
    plain.artifact(
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
        "operation_id": str(run.operation_id),
        "metrics_written": written,
        "projections": projected["projected"],
        "within_horizon": projected["within_horizon"],
        "comparison": projected["comparison"],
    }
    return Done(result=result, message=f"{written} measurements, {projected['projected']} projections")


@flow(name="capacity", log_prints=False)
def capacity_flow() -> State[Any]:
    """Daily capacity snapshot, growth fits and projections into capacity_planning_metrics."""
    return lifecycle.run_flow(JOB, capacity_run)
