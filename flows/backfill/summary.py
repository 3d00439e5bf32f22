"""What a backfill did: the days x jobs table, the summary, earlier outcomes carried forward, and
the run's outcome."""

from __future__ import annotations

from typing import Any

import psycopg

from flows.backfill.request import (
    BUSY,
    ERROR,
    PROBLEMS,
    RANGE,
    Item,
    ItemResult,
    Request,
)
from flows.core import markdown
from flows.core.engine import Phase
from flows.core.engine.outcomes import Done, Outcome, ProblemsFound
from flows.core.errors import InfrastructureError

Conn = psycopg.Connection[tuple[Any, ...]]


def outcome_table(request: Request, outcomes: dict[Item, ItemResult]) -> list[dict[str, Any]]:
    """Days x jobs: one row per day, one column per job (range jobs show their single outcome)."""
    rows = []
    for d in request.days:
        row: dict[str, Any] = {"day": d.isoformat()}
        for job in request.jobs:
            day = d.isoformat() if request.phase(job) is Phase.DAY else RANGE
            res = outcomes.get(Item(job, day))
            row[job] = "-" if res is None else res.outcome
        rows.append(row)
    return rows


def table_markdown(request: Request, outcomes: dict[Item, ItemResult]) -> str:
    """The backfill-summary artifact (details are error messages: escaped, they render as written)."""
    rows = outcome_table(request, outcomes)
    lines = [
        f"# Backfill {request.start} .. {request.end}",
        "",
        *markdown.table(["day", *request.jobs], ([r[k] for k in ["day", *request.jobs]] for r in rows)),
    ]
    notes = [r for r in outcomes.values() if r.outcome in (PROBLEMS, ERROR, BUSY)]
    if notes:
        lines += ["", "## Not done cleanly", ""]
        lines += [f"- {markdown.text(f'{r.job} {r.day}: {r.outcome}: {r.detail}')}" for r in notes]
    ranged = [j for j in request.jobs if request.phase(j) is not Phase.DAY]
    if ranged:
        lines += ["", markdown.text(f"{', '.join(ranged)}: once for the whole range (shown on every day).")]
    return "\n".join(lines)


def summarize(request: Request, outcomes: dict[Item, ItemResult]) -> dict[str, Any]:
    by: dict[str, int] = {}
    for r in outcomes.values():
        by[str(r.outcome)] = by.get(str(r.outcome), 0) + 1
    return {
        "request": request.key,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        "jobs": list(request.jobs),
        "items": len(outcomes),
        "outcomes": by,
        "already_done": sum(1 for r in outcomes.values() if r.earlier),
        "work_seconds": round(sum(r.work_seconds for r in outcomes.values()), 4),
        "item_seconds": round(sum(r.seconds for r in outcomes.values()), 4),
        "table": outcome_table(request, outcomes),
        "not_done": [r.as_dict() for r in outcomes.values() if r.outcome in (PROBLEMS, ERROR, BUSY)],
    }


def carried_forward(done: dict[Item, tuple[str, str]]) -> dict[Item, ItemResult]:
    """Items a previous run of the same request finished keep their recorded outcome and detail
    (problems stay problems, and the exit code counts them) and say so, instead of looking freshly
    done or skipped."""
    return {
        i: ItemResult(
            i.job,
            i.day,
            outcome,
            f"{detail} (recorded earlier in this backfill, not re-run)" if detail else f"{outcome} earlier",
            earlier=True,
        )
        for i, (outcome, detail) in done.items()
    }


def outcome_of(summary: dict[str, Any]) -> Outcome:
    """Errors or busy items: InfrastructureError (exit 3, resume later); problems: ProblemsFound (1)."""
    by = summary["outcomes"]
    span = f"backfill {summary['start']}..{summary['end']}"
    if by.get(ERROR) or by.get(BUSY):
        raise InfrastructureError(
            f"{span}: {by.get(ERROR, 0)} item(s) failed, {by.get(BUSY, 0)} busy;"
            " run the same command again to resume"
        )
    if by.get(PROBLEMS):
        found = [r for r in summary["not_done"] if r["outcome"] == PROBLEMS]
        return ProblemsFound(
            findings=[f"{r['job']} {r['day']}: {r['detail']}" for r in found],
            summary=f"{span}: {by[PROBLEMS]} item(s) found problems",
            result=summary,
        )
    earlier = summary.get("already_done", 0)
    again = f" ({earlier} recorded earlier, not re-run)" if earlier else ""
    return Done(result=summary, message=f"{span}: {summary['items']} item(s) done{again}")
