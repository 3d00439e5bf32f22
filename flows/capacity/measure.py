"""Capacity snapshot: bytes and rows of every table, partition and view, and the database size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from flows.core import clock
from flows.core.db import load_sql
from flows.core.metrics import Measurement, record

Conn = psycopg.Connection[tuple[Any, ...]]


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
