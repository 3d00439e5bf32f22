"""A run's results: rows of ``data_quality_checks`` (suite ``upkeep``, window: the run's UTC day),
measurements for ``capacity_planning_metrics``, alert observations and the findings of the run.

Checks (target: the table or index):
  upkeep.statistics        a parent that needed ANALYZE: passed (analyzed) | failed | warning (not yet)
  upkeep.stale_statistics  a table whose statistics are missing or stale: warning (autovacuum's)
  upkeep.invalid_index     passed (rebuilt, or its leftover copy dropped) | failed (still invalid)
  upkeep.bloated_index     passed (rebuilt) | warning (waits for the window) | failed
  upkeep.unused_index      warning (unused for unused_days) | skipped (watched, not long enough)
  upkeep.duplicate_index   warning: the redundant index of a group (the one to keep is named)
  upkeep.vacuum            failed: autovacuum is behind on the table
  upkeep.run               one a run (target ``database``): what it found, counted; the worst status
                           of the rows above (a run that found nothing still leaves this row)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from flows.alerts.alerting import Observation
from flows.core import metrics
from flows.core.db import load_sql
from flows.upkeep.rebuild import Rebuilt
from flows.upkeep.statistics import Analyzed, marks_of
from flows.upkeep.survey import Survey

Conn = psycopg.Connection[tuple[Any, ...]]

CHECKS = (
    "upkeep.statistics",
    "upkeep.stale_statistics",
    "upkeep.invalid_index",
    "upkeep.bloated_index",
    "upkeep.unused_index",
    "upkeep.duplicate_index",
    "upkeep.vacuum",
    "upkeep.run",
)
NEXT = {
    "rebuild": "pgtender run upkeep  # inside the window: REINDEX INDEX CONCURRENTLY {subject}",
    "leftover": "pgtender run upkeep  # inside the window: DROP INDEX CONCURRENTLY {subject} (a copy)",
    "partitioned": "CREATE INDEX on the partition lacking it; ALTER INDEX {subject} ATTACH PARTITION it",
    "vacuum": "VACUUM (VERBOSE) {subject}  # then look for what holds autovacuum back",
}


@dataclass(kw_only=True)
class Outcome:
    """What the run did, beside what it found (the survey)."""

    survey: Survey
    analyzed: list[Analyzed]
    rebuilt: list[Rebuilt]
    dry_run: bool


def window_of(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day ``now`` falls in: the window of the run's check rows."""
    start = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _row(check: str, target: str, status: str, observed: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"check_name": check, "target": target, "status": status, "observed": observed, **extra}


def _statistics_rows(out: Outcome) -> list[dict[str, Any]]:
    done = {a.parent: a for a in out.analyzed}
    rows = []
    for item in out.survey.due:
        a = done.get(item.parent.name)
        status = "warning" if a is None else ("passed" if a.status == "analyzed" else "failed")
        observed = {"reason": item.reason, "analyzed": a is not None and a.status == "analyzed"}
        if a is not None and a.error:
            observed["error"] = a.error
        rows.append(_row("upkeep.statistics", item.parent.name, status, observed))
    for s in out.survey.stale:
        observed = {"reason": s.reason, "rows": s.rows, "changed_since_analyze": s.changed}
        observed["last_analyze"] = s.last_analyze.isoformat() if s.last_analyze else None
        rows.append(_row("upkeep.stale_statistics", s.table, "warning", observed))
    return rows


def _index_rows(out: Outcome) -> list[dict[str, Any]]:
    done = {r.index: r for r in out.rebuilt}
    rows = []
    for i in out.survey.invalid:
        r = done.get(i.index)
        fixed = r is not None and r.status in ("rebuilt", "dropped")
        observed = {"kind": i.kind, "table": i.table, "bytes": i.bytes, "definition": i.definition}
        if r is not None:
            observed.update(action=r.status, error=r.error)
        rows.append(_row("upkeep.invalid_index", i.index, "passed" if fixed else "failed", observed))
    for b in out.survey.bloated:
        r = done.get(b.index)
        status = (
            "warning"
            if r is None or r.status == "deferred"
            else ("passed" if r.status == "rebuilt" else "failed")
        )
        observed = {
            "table": b.table,
            "bloat_pct": round(b.bloat_pct or 0.0, 1),
            "bytes": b.bytes,
            "source": b.source,
        }
        if r is not None:
            observed.update(action=r.status, bytes_after=r.bytes_after, error=r.error)
        rows.append(_row("upkeep.bloated_index", b.index, status, observed, threshold=out.survey.bloat_pct))
    return rows


def _report_rows(out: Outcome) -> list[dict[str, Any]]:
    rows = []
    for u in out.survey.unused:
        observed = {
            "table": u.table,
            "bytes": u.bytes,
            "partitions": u.partitions,
            "first_seen": u.first_seen.isoformat(),
            "counted_since": u.counted_since.isoformat(),
        }
        rows.append(_row("upkeep.unused_index", u.index, "warning" if u.unused else "skipped", observed))
    for g in out.survey.duplicates:
        sizes = dict(zip(g.indexes, g.bytes, strict=True))
        for index in g.redundant:
            observed = {
                "table": g.table,
                "bytes": sizes[index],
                "duplicate_of": g.keep,
                "indexes": list(g.indexes),
                "definition": g.definition,
            }
            rows.append(_row("upkeep.duplicate_index", index, "warning", observed))
    for v in out.survey.vacuum:
        if v.behind:
            observed = {
                "dead_tuples": v.dead,
                "live_tuples": v.live,
                "dead_ratio": round(v.dead_ratio, 4),
                "hours_since_vacuum": round(v.hours_since, 1),
                "last_vacuum": v.last_vacuum.isoformat() if v.last_vacuum else None,
                "reason": v.reason,
            }
            rows.append(_row("upkeep.vacuum", v.table, "failed", observed))
    return rows


def _run_row(out: Outcome, rows: list[dict[str, Any]]) -> dict[str, Any]:
    s = out.survey
    statuses = {r["status"] for r in rows}
    worst = next((w for w in ("failed", "warning") if w in statuses), "passed")
    observed = {
        "window_open": s.window_open,
        "parents_analyzed": sum(1 for a in out.analyzed if a.status == "analyzed"),
        "indexes_rebuilt": sum(1 for r in out.rebuilt if r.status == "rebuilt"),
        "invalid_indexes": sum(1 for i in s.invalid if i.kind != "building"),
        "bloated_indexes": len(s.bloated),
        "unused_indexes": sum(1 for u in s.unused if u.unused),
        "duplicate_indexes": sum(len(g.redundant) for g in s.duplicates),
        "vacuum_behind": sum(1 for v in s.vacuum if v.behind),
        "db_ms": round(s.db_ms, 1),
    }
    return _row("upkeep.run", "database", worst, observed)


def check_rows(out: Outcome) -> list[dict[str, Any]]:
    rows = _statistics_rows(out) + _index_rows(out) + _report_rows(out)
    return [*rows, _run_row(out, rows)]


def measurements(out: Outcome) -> list[metrics.Measurement]:
    s = out.survey
    done = [d for d in s.due if any(a.parent == d.parent.name for a in out.analyzed)]
    rows = marks_of(done, out.analyzed)
    for b in s.bloat:
        if b.bloat_pct is not None:
            rows.append(
                metrics.Measurement(
                    "upkeep.index_bloat_pct", "index", b.index, b.bloat_pct, "percent", {"source": b.source}
                )
            )
    for r in out.rebuilt:
        if r.status == "rebuilt" and r.bytes_after is not None:
            meta = {"kind": r.kind, "attempts": r.attempts, "duration_ms": round(r.duration_ms, 1)}
            rows.append(
                metrics.Measurement(
                    "upkeep.index_bytes_before", "index", r.index, float(r.bytes_before), "bytes", meta
                )
            )
            rows.append(
                metrics.Measurement(
                    "upkeep.index_bytes_after", "index", r.index, float(r.bytes_after), "bytes", meta
                )
            )
    for v in s.vacuum:
        rows.append(
            metrics.Measurement(
                "upkeep.dead_tuple_ratio", "table", v.table, v.dead_ratio, "ratio", {"dead_tuples": v.dead}
            )
        )
    rows.append(
        metrics.Measurement("upkeep.run_db_ms", "upkeep", "upkeep", s.db_ms, "ms", dict(s.timings_ms))
    )
    return rows


def record(
    conn: Conn, out: Outcome, *, flow_run_id: str | None = None, operation_id: UUID | None = None
) -> tuple[int, int]:
    """Replace the run's window's current upkeep rows with this run's, write its measurements."""
    start, end = window_of(out.survey.now)
    rows = check_rows(out)
    with conn.transaction():
        conn.execute(
            load_sql("queries/upkeep/supersede.sql"),
            {"checks": list(CHECKS), "window_start": start, "window_end": end},
        )
        conn.execute(
            load_sql("queries/upkeep/insert_checks.sql"),
            {"rows": Jsonb(rows), "window_start": start, "window_end": end, "flow_run_id": flow_run_id},
        )
    written = metrics.record(
        conn,
        measurements(out),
        measured_at=out.survey.now,
        flow_run_id=flow_run_id,
        operation_id=operation_id,
    )
    return len(rows), written


def observations(survey: Survey, rebuilt: list[Rebuilt]) -> list[Observation]:
    """Invalid indexes and tables autovacuum is behind on, as the alerts see them: failing until an
    index is rebuilt (or its leftover copy dropped) or the table is vacuumed. Before the rebuilds
    (``rebuilt`` empty) every invalid index found fails: it pages, and the evaluation after the
    rebuilds resolves the ones fixed."""
    fixed = {r.index for r in rebuilt if r.status in ("rebuilt", "dropped")}
    out = []
    for i in survey.invalid:
        if i.kind == "building":
            continue
        failing = i.index not in fixed
        out.append(
            Observation(
                check_name="upkeep.invalid_index",
                subject=i.index,
                failing=failing,
                observed={"kind": i.kind, "table": i.table},
                limit="valid",
                summary=f"index {i.index} on {i.table} is invalid ({i.kind})"
                if failing
                else f"index {i.index} rebuilt",
                next_command=NEXT[i.kind].replace("{subject}", i.index) if failing else "",
            )
        )
    for v in survey.vacuum:
        if v.behind:
            out.append(
                Observation(
                    check_name="upkeep.vacuum",
                    subject=v.table,
                    failing=True,
                    observed={
                        "dead_tuples": v.dead,
                        "dead_ratio": round(v.dead_ratio, 4),
                        "hours_since_vacuum": round(v.hours_since, 1),
                    },
                    limit=v.reason,
                    summary=f"autovacuum is behind on {v.table}: {v.reason}",
                    next_command=NEXT["vacuum"].replace("{subject}", v.table),
                )
            )
    return out
