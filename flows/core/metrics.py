"""``capacity_planning_metrics``: the one insert path every job writes its measurements through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

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
    """Write measurements in one transaction; re-recording the same instant replaces values."""
    if not measurements:
        return 0
    params = [
        {  # fields one by one: asdict() deep-copies every metadata dict (most of a no-op pass's time)
            "metric_name": m.metric_name,
            "resource_type": m.resource_type,
            "resource_name": m.resource_name,
            "value": m.value,
            "unit": m.unit,
            "metadata": Jsonb(m.metadata),
            "measured_at": measured_at,
            "flow_run_id": flow_run_id,
            "operation_id": operation_id,
        }
        for m in measurements
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(load_sql("queries/capacity/insert_metric.sql"), params)
    return len(params)
