"""Growth fits (Theil-Sen) over the recorded history, the day each threshold is reached."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from flows.core.db import load_sql
from flows.core.policy import settings

Conn = psycopg.Connection[tuple[Any, ...]]

PROJECTED_METRICS = ("total_bytes", "row_count")
UNITS = {"total_bytes": "bytes", "row_count": "rows"}


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
