"""What retention did to a table"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from flows.core import metrics

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(kw_only=True)
class PartitionAction:
    table: str
    partition: str
    lower: str
    upper: str
    mode: str
    rows: int
    rows_exact: bool
    bytes: int
    steps: list[str]
    archived_to: str | None = None


@dataclass(kw_only=True)
class TableOutcome:
    table: str
    schema: str
    kind: str  # partitioned | plain
    dry_run: bool
    actions: list[PartitionAction] = field(default_factory=list)
    rows_removed: int = 0
    bytes_removed: int = 0
    rows_archived: int = 0
    bytes_archived: int = 0
    rows_remaining: int = 0  # plain tables: expired rows left when the time budget ran out
    complete: bool = True

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def measurements(outcome: TableOutcome) -> list[metrics.Measurement]:
    resource = outcome.table if outcome.schema == "public" else f"{outcome.schema}.{outcome.table}"
    meta: dict[str, Any] = {"schema": outcome.schema, "kind": outcome.kind, "complete": outcome.complete}
    if outcome.kind == "plain":
        meta["bytes_estimated"] = True
    else:
        meta["rows_exact"] = all(a.rows_exact for a in outcome.actions)
        meta["partitions"] = [a.partition for a in outcome.actions]
    return [
        metrics.Measurement(name, "table", resource, float(value), unit, meta)
        for name, value, unit in (
            ("retention_rows_removed", outcome.rows_removed, "rows"),
            ("retention_bytes_removed", outcome.bytes_removed, "bytes"),
            ("retention_rows_archived", outcome.rows_archived, "rows"),
            ("retention_bytes_archived", outcome.bytes_archived, "bytes"),
        )
    ]
