"""Which materialized views and rollup tables a run refreshes, and in what order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from flows.core.db import load_sql
from flows.core.errors import ConfigError
from flows.core.policy import settings

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class MatView:
    name: str
    populated: bool
    unique_index: str | None
    depends_on: tuple[str, ...]
    # A rollup table: recomputed for a range of days by this function instead of REFRESH.
    rollup_function: str | None = None

    @property
    def concurrent(self) -> bool:
        """REFRESH ... CONCURRENTLY needs a populated view and a usable unique index."""
        return self.rollup_function is None and self.populated and self.unique_index is not None

    @property
    def mode(self) -> str:
        if self.rollup_function is not None:
            return "rollup"
        return "concurrently" if self.concurrent else "plain"

    def warning(self) -> str | None:
        if self.rollup_function is not None:
            return None
        if self.unique_index is None:
            return (
                f"materialized view {self.name} has no unique index over plain columns without a WHERE"
                f" clause (e.g. CREATE UNIQUE INDEX {self.name}_key ON {self.name} (<key columns>)):"
                " refreshed without CONCURRENTLY, which blocks its readers"
            )
        if not self.populated:
            return f"materialized view {self.name} is not populated: first refresh is a plain one"
        return None


def discover(conn: Conn, schema: str = "public") -> list[MatView]:
    """Rollup tables (see the package doc) and materialized views of the schema."""
    rollups = conn.execute(load_sql("queries/views/rollups.sql"), {"schema": schema}).fetchall()
    rows = conn.execute(load_sql("queries/views/matviews.sql"), {"schema": schema}).fetchall()
    return [
        MatView(name=str(r[0]), populated=True, unique_index=None, depends_on=(), rollup_function=str(r[1]))
        for r in rollups
    ] + [
        MatView(name=str(r[0]), populated=bool(r[1]), unique_index=r[2], depends_on=tuple(r[3])) for r in rows
    ]


def select_views(
    views: list[MatView], include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> list[MatView]:
    """Apply the allow/deny lists; a name that is not a materialized view or rollup is a ConfigError."""
    known = {v.name for v in views}
    for listed, label in ((include, "include"), (exclude, "exclude")):
        missing = sorted(set(listed) - known)
        if missing:
            raise ConfigError(
                f"views.{label} names {missing[0]!r}, which is not a materialized view or rollup table"
            )
    return [v for v in views if (not include or v.name in include) and v.name not in exclude]


def refresh_order(views: list[MatView]) -> list[MatView]:
    """Rollups first (views may read them), then topological order (dependencies first, ties by
    name); dependencies not selected are ignored."""
    by_name = {v.name: v for v in views}
    pending = {v.name: {d for d in v.depends_on if d in by_name} for v in views}
    ordered: list[MatView] = []
    while pending:
        ready = sorted(name for name, deps in pending.items() if not deps)
        if not ready:
            raise ConfigError(f"materialized views depend on each other in a cycle: {sorted(pending)}")
        for name in ready:
            ordered.append(by_name[name])
            del pending[name]
        for deps in pending.values():
            deps.difference_update(ready)
    return sorted(ordered, key=lambda v: v.rollup_function is None)  # stable: keeps the order


def plan(conn: Conn, policy: settings.ViewsPolicy) -> list[MatView]:
    return refresh_order(select_views(discover(conn, policy.schema_name), policy.include, policy.exclude))
