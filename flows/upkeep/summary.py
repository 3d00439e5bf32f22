"""A run in a few words: the findings that make it exit 1, the ledger's counts, the artifact's rows."""

from __future__ import annotations

from typing import Any

from flows.upkeep.results import Outcome

MB = 1024 * 1024


def findings(out: Outcome) -> list[str]:
    """What an operator must look at: indexes still invalid, failed ANALYZEs and rebuilds, copies a
    failed rebuild left, tables autovacuum is behind on."""
    s = out.survey
    done = {r.index: r for r in out.rebuilt}
    found = []
    for i in s.invalid:
        r = done.get(i.index)
        if i.kind == "building" or (r is not None and r.status in ("rebuilt", "dropped")):
            continue
        why = (r.error if r is not None and r.error else None) or _why_not(out, i.kind)
        found.append(f"invalid index {i.index} on {i.table}: {why}")
    found += [f"ANALYZE {a.parent} failed: {a.error}" for a in out.analyzed if a.status == "failed"]
    found += [
        f"rebuild of bloated index {r.index} failed: {r.error}"
        for r in out.rebuilt
        if r.kind == "bloated" and r.status == "failed"
    ]
    for r in out.rebuilt:
        found += [f"invalid copy {name} left by a failed rebuild of {r.index}" for name in r.leftovers]
    found += [f"autovacuum is behind on {v.table}: {v.reason}" for v in s.vacuum if v.behind]
    return found


def _why_not(out: Outcome, kind: str) -> str:
    if kind == "partitioned":
        return "a partition lacks its index: create it on the partition and ALTER INDEX ... ATTACH PARTITION"
    if out.dry_run:
        return "dry run: not rebuilt"
    if not out.survey.window_open:
        return f"rebuilt in the window (opens {out.survey.opens_at.isoformat(timespec='minutes')})"
    return "not rebuilt"


def counts(out: Outcome) -> dict[str, Any]:
    s = out.survey
    status = [r.status for r in out.rebuilt]
    return {
        "dry_run": out.dry_run,
        "window_open": s.window_open,
        "tables": s.tables,
        "parents": len(s.parents),
        "analyze_due": len(s.due),
        "analyzed": sum(1 for a in out.analyzed if a.status == "analyzed"),
        "stale_statistics": len(s.stale),
        "invalid_indexes": sum(1 for i in s.invalid if i.kind != "building"),
        "bloated_indexes": len(s.bloated),
        "rebuilt": status.count("rebuilt"),
        "dropped_leftovers": status.count("dropped"),
        "deferred": status.count("deferred"),
        "failed": status.count("failed") + sum(1 for a in out.analyzed if a.status == "failed"),
        "unused_indexes": sum(1 for u in s.unused if u.unused),
        "duplicate_indexes": sum(len(g.redundant) for g in s.duplicates),
        "vacuum_behind": sum(1 for v in s.vacuum if v.behind),
        "db_ms": round(s.db_ms, 1),
    }


def _mb(size: int | None) -> str:
    return "-" if size is None else f"{size / MB:.1f} MB"


def artifact_rows(out: Outcome) -> list[dict[str, Any]]:
    """One row per thing upkeep looked at closely: what it is, what was done, the detail."""
    s = out.survey
    analyzed = {a.parent: a for a in out.analyzed}
    done = {r.index: r for r in out.rebuilt}
    rows: list[dict[str, Any]] = []
    for d in s.due:
        a = analyzed.get(d.parent.name)
        action = "would analyze" if a is None else a.status
        rows.append(
            {"kind": "parent statistics", "object": d.parent.name, "action": action, "detail": d.reason}
        )
    for t in s.stale:
        rows.append({"kind": "stale statistics", "object": t.table, "action": "listed", "detail": t.reason})
    for i in s.invalid:
        r = done.get(i.index)
        rows.append(
            {
                "kind": f"invalid index ({i.kind})",
                "object": i.index,
                "action": r.status if r else "-",
                "detail": (r.error if r and r.error else i.definition),
            }
        )
    for b in s.bloated:
        r = done.get(b.index)
        detail = f"{b.bloat_pct:.0f}% bloat ({b.source}), {_mb(b.bytes)}"
        if r is not None and r.bytes_after is not None:
            detail += f" -> {_mb(r.bytes_after)}"
        rows.append(
            {"kind": "bloated index", "object": b.index, "action": r.status if r else "-", "detail": detail}
        )
    for u in s.unused:
        if u.unused:
            rows.append(
                {
                    "kind": "unused index",
                    "object": u.index,
                    "action": "reported (never dropped)",
                    "detail": f"no scans since {u.counted_since.date()}, {_mb(u.bytes)} on {u.table}",
                }
            )
    for g in s.duplicates:
        rows += [
            {
                "kind": "duplicate index",
                "object": name,
                "action": "reported (never dropped)",
                "detail": f"same as {g.keep} on {g.table}",
            }
            for name in g.redundant
        ]
    rows += [
        {"kind": "vacuum", "object": v.table, "action": "paged", "detail": v.reason}
        for v in s.vacuum
        if v.behind
    ]
    return rows


def message(out: Outcome) -> str:
    c = counts(out)
    verb = "would analyze" if out.dry_run else "analyzed"
    head = f"{verb} {c['analyze_due'] if out.dry_run else c['analyzed']} parent(s)"
    return (
        f"{head}, {c['rebuilt']} index(es) rebuilt, {c['deferred']} deferred to the window;"
        f" {c['unused_indexes']} unused and {c['duplicate_indexes']} duplicate index(es) reported"
    )
