"""Planner statistics: ANALYZE of the partitioned parents autovacuum never analyzes, and the list
of tables whose statistics are missing or stale.

A parent is analyzed when it has no statistics, when its partitions changed since pgtender last
analyzed it (one attached, detached or dropped: the partitions job, retention or a person did it),
or when its partitions' rows changed by more than ``analyze_change_fraction`` of its rows since then
(inserts + updates + deletes: a DEFAULT rescue moves rows, new data arrives). What it had then is
recorded with each ANALYZE (the ``upkeep.parent_analyzed`` measurement: the partitions' cumulative
changes and a fingerprint of which partitions it had); a parent pgtender never analyzed is analyzed
once to start that record. PostgreSQL 18 analyzes the parent alone (``ANALYZE ONLY``); before 18 an
ANALYZE of a parent also analyzes each partition (the parent's sample comes from them anyway).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from flows.core import ddl, metrics
from flows.core.db import load_sql, set_local
from flows.core.policy.upkeep import UpkeepPolicy
from flows.upkeep.scope import Scope

Conn = psycopg.Connection[tuple[Any, ...]]

MARK = "upkeep.parent_analyzed"
ANALYZE_ONLY_FROM = 180000  # server_version_num: ANALYZE ONLY (a parent without its partitions)


@dataclass(frozen=True, kw_only=True)
class Parent:
    oid: int
    name: str
    reltuples: float  # -1: never analyzed (PostgreSQL 14+)
    last_analyze: datetime | None
    partitions: int
    fingerprint: str
    changes: int  # the leaf partitions' inserts + updates + deletes since the statistics reset
    live_rows: int


@dataclass(frozen=True, kw_only=True)
class Mark:
    at: datetime
    changes: int
    fingerprint: str
    partitions: int


@dataclass(frozen=True, kw_only=True)
class Due:
    parent: Parent
    reason: str


@dataclass(frozen=True, kw_only=True)
class Analyzed:
    parent: str
    reason: str
    status: str  # analyzed | failed
    duration_ms: float
    rows_estimated: float | None = None  # reltuples after the ANALYZE
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class StaleTable:
    table: str
    reason: str  # missing | stale
    rows: int
    changed: int
    last_analyze: datetime | None


def parents(conn: Conn, scope: Scope) -> list[Parent]:
    oids = [t.oid for t in scope.parents]
    if not oids:
        return []
    rows = conn.execute(load_sql("queries/upkeep/parents.sql"), {"parents": oids}).fetchall()
    return [
        Parent(
            oid=int(r[0]),
            name=str(r[1]),
            reltuples=float(r[2]),
            last_analyze=r[3],
            partitions=int(r[4]),
            fingerprint=str(r[5]),
            changes=int(r[6]),
            live_rows=int(r[7]),
        )
        for r in rows
    ]


def marks(conn: Conn, names: list[str]) -> dict[str, Mark]:
    if not names:
        return {}
    rows = conn.execute(load_sql("queries/upkeep/marks.sql"), {"names": names}).fetchall()
    out: dict[str, Mark] = {}
    for name, at, value, recorded in rows:
        meta = recorded or {}
        out[str(name)] = Mark(
            at=at,
            changes=int(value),
            fingerprint=str(meta.get("fingerprint", "")),
            partitions=int(meta.get("partitions", 0)),
        )
    return out


def analyze_reason(parent: Parent, mark: Mark | None, fraction: float) -> str | None:
    """Why ``parent`` needs ANALYZE now, or None (its statistics still describe its partitions)."""
    if parent.reltuples < 0:
        return "no statistics"
    if mark is None:
        return "never analyzed by pgtender (its partitions' changes since are unknown)"
    if parent.fingerprint != mark.fingerprint:
        return (
            f"partitions attached or detached since its last analyze"
            f" ({mark.partitions} -> {parent.partitions})"
        )
    changed = parent.changes - mark.changes
    if changed < 0:
        return "statistics counters were reset since its last analyze"
    if changed > 0 and changed >= fraction * max(parent.reltuples, 0.0):
        share = changed / parent.reltuples if parent.reltuples > 0 else float("inf")
        return (
            f"{changed} rows changed in its partitions since its last analyze"
            f" ({share:.0%} of {max(parent.reltuples, 0):.0f}, threshold {fraction:.0%})"
        )
    return None


def due(conn: Conn, scope: Scope, fraction: float) -> tuple[list[Parent], list[Due]]:
    """Every parent of the scope, and those that need ANALYZE (with why)."""
    found = parents(conn, scope)
    known = marks(conn, [p.name for p in found])
    out = []
    for parent in found:
        reason = analyze_reason(parent, known.get(parent.name), fraction)
        if reason is not None:
            out.append(Due(parent=parent, reason=reason))
    return found, out


def analyze_statement(conn: Conn, schema: str, table: str) -> sql.Composed:
    only = sql.SQL("ONLY ") if conn.info.server_version >= ANALYZE_ONLY_FROM else sql.SQL("")
    return sql.SQL("ANALYZE {}{}").format(only, sql.Identifier(schema, table))


def analyze_parent(conn: Conn, item: Due, *, schema: str, policy: UpkeepPolicy, log: Any) -> Analyzed:
    """ANALYZE one parent in its own transaction under ``lock_timeout`` (retried with backoff); a
    database error is a failed result, not an exception (the other parents still get theirs)."""
    statement = analyze_statement(conn, schema, item.parent.name)

    def work(c: Conn) -> float:
        set_local(c, "statement_timeout", f"{policy.rebuild_statement_timeout_ms}ms")
        c.execute(statement)
        row = c.execute(load_sql("queries/upkeep/reltuples.sql"), {"oid": item.parent.oid}).fetchone()
        return float(row[0]) if row else -1.0

    started = time.perf_counter()
    try:
        rows = ddl.run_locked(conn, work, retry=policy, what=f"ANALYZE {item.parent.name}", log=log)
    except (psycopg.Error, ddl.LockRetriesExhausted) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        log.error("analyze failed", table=item.parent.name, error=message)
        return Analyzed(
            parent=item.parent.name,
            reason=item.reason,
            status="failed",
            duration_ms=(time.perf_counter() - started) * 1000.0,
            error=f"{type(exc).__name__}: {message}",
        )
    duration_ms = (time.perf_counter() - started) * 1000.0
    log.info("analyzed", table=item.parent.name, reason=item.reason, duration_ms=round(duration_ms, 1))
    return Analyzed(
        parent=item.parent.name,
        reason=item.reason,
        status="analyzed",
        duration_ms=duration_ms,
        rows_estimated=rows,
    )


def marks_of(items: list[Due], results: list[Analyzed]) -> list[metrics.Measurement]:
    """The ``upkeep.parent_analyzed`` record of each parent analyzed: what the next run compares to."""
    by_name = {d.parent.name: d.parent for d in items}
    return [
        metrics.Measurement(
            MARK,
            "table",
            r.parent,
            float(by_name[r.parent].changes),
            "rows",
            {
                "fingerprint": by_name[r.parent].fingerprint,
                "partitions": by_name[r.parent].partitions,
                "reason": r.reason,
                "duration_ms": round(r.duration_ms, 1),
                "rows_estimated": r.rows_estimated,
            },
        )
        for r in results
        if r.status == "analyzed"
    ]


def stale_tables(conn: Conn, scope: Scope, fraction: float) -> list[StaleTable]:
    """Tables (partitions included) with rows whose statistics are missing or stale."""
    if not scope.tables:
        return []
    rows = conn.execute(
        load_sql("queries/upkeep/stale_tables.sql"), {"tables": scope.oids, "fraction": fraction}
    ).fetchall()
    return [
        StaleTable(
            table=str(r[0]),
            reason="missing" if float(r[1]) < 0 else "stale",
            rows=int(r[2]),
            changed=int(r[3]),
            last_analyze=r[4],
        )
        for r in rows
    ]
