"""On-call backfill: re-run quality / capacity (and partitions, views) over a range of UTC days.

``pgtender backfill --start D --end D [--jobs quality,capacity,views,partitions] [--force]``

- The request is validated before anything is touched (``validate``): dates, start <= end, no
  future day, at most ``backfill.max_days`` days unless ``force``, known job names.
- Work items are (job, day) for the day jobs (quality, capacity) and one item for the range jobs:
  ``partitions`` once before the days (rows of a late load parked in DEFAULT move into their
  partitions first, so the day's checks see them in place), ``views`` once after them (a view is a
  function of all the data: refreshing it per day would only repeat the same work; rollup tables
  recompute exactly the backfilled days).
- Each item runs the job's plain core for its day under the job's advisory lock plus a (job, day)
  lock; a scheduled run takes one of the two (capacity the job's, quality the day's), so an item
  never overlaps a scheduled run doing the same work, and a quality run of today's window is not
  held up by a backfill of other days. A held lock is waited for up to
  ``backfill.lock_wait_seconds``, then the item is ``busy``.
- Idempotent: quality supersedes the window's previous results (one current row per check and
  day); capacity projections are written at a fixed instant per day (an upsert).
- Resumable: every item writes a ledger row (job ``backfill``, params ``request``/``day``/``job``);
  items already completed for the same request are skipped unless ``force``.
- Orchestration is per chunk, not per day: one flow run, one task per ``chunk_days`` days, plain
  calls inside (``bench/backfill.py`` measures the overhead against the SQL work).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import Field

from flows.backfill.driver import chunks, plan, run_chunk
from flows.backfill.items import finished_since, run_item
from flows.backfill.request import JOB, Item, ItemOutcome, ItemResult, Request, validate
from flows.backfill.summary import carried_forward, outcome_of, summarize, table_markdown
from flows.core import markdown
from flows.core.engine import JobSpec, LockScope, Outcome, Params, Plan, Planning, ReplayContext, Run, step
from flows.core.engine.forms import ReplayableJob
from flows.core.errors import ConfigError
from flows.core.logs import get_logger


@step("backfill-chunk", retries=1, task_run_name="backfill-{label}")
def chunk_step(run: Run, request: Request, items: list[Item], label: str, progress: Any) -> list[ItemResult]:
    """One chunk of items, one after another on one connection; progress after each item."""
    ctx = ReplayContext(
        policy=run.policy,
        now=run.started_at,
        state_dir=run.state_dir,
        dsn=run.target.dsn,
        flow_run_id=run.flow_run_id,
        operation_id=run.operation_id,
        days=(request.start, request.end),
    )
    total = max(1, len(request.items()))

    def advance(_result: ItemResult) -> None:
        progress.done += 1
        run.orchestrator.progress(progress.artifact, 100.0 * progress.done / total)

    with run.connection() as conn:
        return run_chunk(conn, request, items, ctx, replays=run.registry.replays(), on_item=advance)


class _Progress:
    def __init__(self, artifact: Any, done: int) -> None:
        self.artifact = artifact
        self.done = done


def backfill_run(run: Run, request: Request) -> Outcome:
    """The job's work: chunks of items, progress and outcome artifacts."""
    log = get_logger(job=JOB)
    with run.connection() as conn:
        items, done = plan(conn, request)
    todo = [i for i in items if i not in done]
    outcomes = carried_forward(done)
    total = max(1, len(items))
    progress = _Progress(
        run.artifact(
            "progress",
            progress=100.0 * len(done) / total,
            key="backfill-progress",
            description=f"backfill {request.start}..{request.end} ({', '.join(request.jobs)})",
        ),
        len(done),
    )
    log.info(
        "backfill started", request=request.key, items=len(items), already_done=len(done), force=request.force
    )
    for chunk in chunks(request, todo, run.policy.backfill.chunk_days):
        days = sorted({i.day for i in chunk})
        label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        for r in chunk_step(run, request, chunk, label, progress):
            outcomes[Item(r.job, r.day)] = r
        run.record(items_done=sum(1 for i in items if i in outcomes))
    summary = summarize(request, {i: outcomes[i] for i in items})
    run.record(
        items=summary["items"],
        work_seconds=summary["work_seconds"],
        item_seconds=summary["item_seconds"],
        **summary["outcomes"],
    )
    run.artifact(
        "table",
        table=markdown.rows(summary["table"]),
        key="backfill-outcomes",
        description=f"backfill {request.start}..{request.end}: outcome per day and job",
    )
    run.artifact(
        "markdown",
        markdown=table_markdown(request, {i: outcomes[i] for i in items}),
        key="backfill-summary",
        description="backfill outcomes and what was not done cleanly",
    )
    log.info("backfill finished", request=request.key, outcomes=summary["outcomes"])
    return outcome_of(summary)


class BackfillParams(Params):
    start: date = Field(description="First UTC day to re-run (YYYY-MM-DD).")
    end: date = Field(description="Last UTC day to re-run (YYYY-MM-DD), included; not in the future.")
    jobs: list[ReplayableJob] | None = Field(
        None,
        description=(
            "Jobs to re-run: quality, capacity (each day), partitions, views (once)."
            " Empty: quality and capacity."
        ),
    )
    force: bool = Field(
        False,
        description="Re-run days this backfill already did, and allow more than backfill.max_days days.",
    )


def plan_run(planning: Planning, params: BackfillParams) -> Plan:
    """The request checked against the database's today (the rows are its): bad input changes nothing.
    One run of the same request at a time; backfills of other ranges may run side by side (their
    items take the jobs' own locks)."""
    request = validate(
        params.start,
        params.end,
        params.jobs,
        known=planning.registry.replays(),
        force=params.force,
        policy=planning.policy.backfill,
        today=planning.now.date(),
    )
    for job in request.jobs:  # each job's own check of the policy (e.g. quality's suite options)
        spec = planning.registry.get(job)
        if spec.check is not None:
            spec.check(planning.policy, spec.params())
    return Plan(work=lambda run: backfill_run(run, request), params=request.params(), day=request.key)


def check(policy: Any, params: BackfillParams) -> None:
    """Before any target's work: a start after its end (the future is the database's, the range's
    length and the job names are checked in the plan, in that order)."""
    if params.start > params.end:
        raise ConfigError(f"start {params.start} is after end {params.end}")


SPEC = JobSpec(
    name=JOB,
    description=(
        "Re-run quality/capacity (and partitions, views) for the UTC days start..end. Days already done"
        " by the same backfill (same range and jobs) keep their recorded outcome unless force."
    ),
    params=BackfillParams,
    plan=plan_run,
    lock=LockScope.DAY,
    tags=("on-call",),
    check=check,
)


# ---------------------------------------------------------------- CLI (``pgtender backfill``)


__all__ = [
    "JOB",
    "SPEC",
    "Item",
    "ItemOutcome",
    "ItemResult",
    "Request",
    "backfill_run",
    "chunks",
    "finished_since",
    "outcome_of",
    "run_item",
    "table_markdown",
    "validate",
]
