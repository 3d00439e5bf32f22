"""``capacity_planning_metrics``: the one insert path every job writes its measurements through."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from flows.core.db import load_sql

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Measurement:
    metric_name: str
    resource_type: str
    resource_name: str
    value: float
    unit: str
    metadata: dict[str, Any] = field(default_factory=dict)


def record(
    conn: Conn,
    measurements: list[Measurement],
    *,
    measured_at: datetime,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
) -> int:
    """Write measurements in one statement; re-recording the same instant replaces values (and a
    measurement repeated in the list replaces the earlier one, as it would row by row).

    The rows travel as one JSON array (``jsonb_to_recordset``): one parameter to encode, where a
    statement per row, or an array per column, spent more time in the client than in the server."""
    if not measurements:
        return 0
    latest = {(m.metric_name, m.resource_name): m for m in measurements}
    for m in latest.values():
        if not math.isfinite(m.value):
            raise ValueError(f"measurement {m.metric_name} of {m.resource_name} is not finite: {m.value}")
    rows = json.dumps(
        [
            {  # fields one by one: asdict() deep-copies every metadata dict
                "metric_name": m.metric_name,
                "resource_type": m.resource_type,
                "resource_name": m.resource_name,
                "value": float(m.value),
                "unit": m.unit,
                "metadata": m.metadata,
            }
            for m in latest.values()
        ]
    )
    params = {
        "rows": rows,
        "measured_at": measured_at,
        "flow_run_id": flow_run_id,
        "operation_id": operation_id,
    }
    with conn.transaction():
        conn.execute(load_sql("queries/capacity/insert_metric.sql"), params)
    return len(measurements)
