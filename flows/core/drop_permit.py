"""May a plan of down steps drop what it would drop? Refused when tables with rows would go, unless
the operator asked for it (``DropData``): then they are dumped first into the archive store and
verified there, and each step later recounts what it drops against the dump."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from flows.core import clock
from flows.core.archives.ownership import new_owner
from flows.core.archives.store import Store
from flows.core.archives.tables import DumpedTable, TableToDump, dump_table
from flows.core.drop_guard import StepLoss
from flows.core.errors import ConfigError
from flows.core.policy.partitions import DdlRetry

Conn = psycopg.Connection[tuple[Any, ...]]
# per step version: (schema, name, rows it must hold when the step drops it)
Expected = dict[int, list[tuple[str, str, int]]]


class DataLossRefused(ConfigError):
    """Undoing the steps would drop rows and the operator did not ask for it: nothing changed."""


@dataclass
class DropData:
    """The operator's consent to drop tables with rows, and where their dump goes."""

    store: Store
    reason: str = "rollback"
    retry: DdlRetry = field(default_factory=DdlRetry)
    dumped: list[DumpedTable] = field(default_factory=list)  # filled before anything is dropped
    location: str = ""  # the folder of this dump in the store


def describe(losses: list[StepLoss]) -> str:
    """``learning_events (7000 rows in 3 partitions), ml_models (12 rows)``: tables with rows."""
    parts = []
    for loss in losses:
        for rel, rows, partitions in loss.tables():
            if rows:
                inside = f" in {partitions} partitions" if partitions else ""
                parts.append(f"{rel.label} ({rows} rows{inside})")
        parts += [f"{rel.label} (loses {n} rows)" for rel, n in loss.lost]
    return ", ".join(parts)


def _to_dump(losses: list[StepLoss]) -> list[TableToDump]:
    """One dump per partition tree the plan drops whole (else per partition), one per table."""
    trees: dict[int, TableToDump] = {}
    gone = {d.relation.oid for loss in losses for d in loss.dropped}
    for loss in losses:
        for d in loss.dropped:
            if d.relation.kind != "r" or not d.existed or d.relation.bookkeeping:
                continue
            top = d.root if d.root.oid in gone else d.relation
            unit = trees.setdefault(
                top.oid, TableToDump(top.oid, top.schema, top.name, partitioned=top.kind == "p")
            )
            unit.leaves[d.relation.oid] = (d.relation.schema, d.relation.name)
    return [t for t in trees.values() if t.leaves]


def _expected(losses: list[StepLoss], rows_at_dump: dict[int, int]) -> Expected:
    out: Expected = {}
    for loss in losses:
        out[loss.version] = [
            (d.relation.schema, d.relation.name, rows_at_dump.get(d.relation.oid, 0))
            for d in loss.dropped
            if d.relation.kind == "r" and d.existed and not d.relation.bookkeeping
        ]
    return out


def permit(conn: Conn, losses: list[StepLoss], drop_data: DropData | None, *, what: str) -> Expected:
    """Refuse (DataLossRefused, exit 2, nothing changed) or dump and verify; returns what each step
    must find in the tables it drops."""
    lost_in_place = [x for loss in losses for x in loss.lost]
    rows = sum(loss.rows for loss in losses)
    if lost_in_place:
        raise DataLossRefused(
            f"{what} would delete rows from tables that stay: {describe(losses)}; a dump cannot put"
            " them back in place, so pgtender will not run it; nothing changed"
        )
    if rows == 0:
        return _expected(losses, {})
    if drop_data is None:
        tables = sum(1 for loss in losses for _, n, _ in loss.tables() if n)
        raise DataLossRefused(
            f"{what} would drop {tables} table(s) holding {rows} rows: {describe(losses)}; nothing changed"
            " (--drop-data dumps them to the archive store first; --dry-run lists each step)"
        )
    owner = new_owner()
    store = drop_data.store.child(f"{drop_data.reason}-{clock.now().strftime('%Y%m%dT%H%M%SZ')}-{owner[-8:]}")
    drop_data.location = store.location
    rows_at_dump: dict[int, int] = {}
    for table in _to_dump(losses):
        dumped = dump_table(conn, store, table, owner=owner, reason=what, retry=drop_data.retry)
        drop_data.dumped.append(dumped)
        rows_at_dump.update(dumped.leaf_rows)
    return _expected(losses, rows_at_dump)
