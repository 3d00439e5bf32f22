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

from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg
from prefect import flow, task
from prefect.client.schemas.objects import State

from flows.backfill import rejected
from flows.backfill.driver import backfill, chunks, plan, progress_listener, run_chunk
from flows.backfill.items import finished_since, run_item
from flows.backfill.request import JOB, Item, ItemOutcome, ItemResult, Request, validate
from flows.backfill.summary import carried_forward, outcome_of, summarize, table_markdown
from flows.core import clock, lifecycle, markdown, plain, runtime, settings
from flows.core.errors import ConfigError
from flows.core.forms import BackfillJob, TargetName
from flows.core.logs import get_logger
from flows.core.outcomes import Outcome
from flows.core.replay import ReplayContext

Conn = psycopg.Connection[tuple[Any, ...]]

# ---------------------------------------------------------------- Prefect


@task(
    name="backfill-chunk",
    retries=1,
    retry_delay_seconds=[5],
    retry_condition_fn=runtime.retry_transient_only,
    # No tags, like every pgtender task (see runtime.db_task): the flow run carries them.
    task_run_name="backfill-{label}",
)
def _chunk_task(chunk: dict[str, Any], operation_id: UUID, label: str) -> list[dict[str, Any]]:
    """One chunk of items with plain calls on one connection (ids and small values in and out).

    ``chunk``: the request's params, ``items`` as [job, day] pairs, ``now`` (ISO), and the
    ``finished``/``total`` item counts for progress listeners.
    """
    policy = settings.current_policy()
    params = chunk["request"]
    request = Request(
        date.fromisoformat(params["start"]),
        date.fromisoformat(params["end"]),
        tuple(params["jobs"]),
        bool(params["force"]),
    )
    ctx = ReplayContext(
        policy=policy,
        now=datetime.fromisoformat(chunk["now"]),
        flow_run_id=runtime.current_flow_run_id(),
        operation_id=operation_id,
        days=(request.start, request.end),
    )
    items = [Item(job, day) for job, day in chunk["items"]]
    with runtime.connection() as conn:
        results = run_chunk(conn, request, items, ctx, finished=chunk["finished"], total=chunk["total"])
    return [r.as_dict() for r in results]


chunk_task = runtime.plain_aware(_chunk_task, retries=1)


def backfill_run(run: lifecycle.Run, request: Request) -> Outcome:
    """The job's work inside the lifecycle: chunks of items, progress and outcome artifacts."""

    log = get_logger(job=JOB)
    with runtime.connection() as conn:
        items, done = plan(conn, request)
    todo = [i for i in items if i not in done]
    outcomes = carried_forward(done)
    total = max(1, len(items))
    progress_id: UUID = plain.artifact(
        "progress",
        progress=100.0 * len(done) / total,
        key="backfill-progress",
        description=f"backfill {request.start}..{request.end} ({', '.join(request.jobs)})",
    )
    log.info(
        "backfill started", request=request.key, items=len(items), already_done=len(done), force=request.force
    )
    finished = len(done)
    for chunk in chunks(todo, run.policy.backfill.chunk_days):
        days = sorted({i.day for i in chunk})
        label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        payload = {
            "request": request.params(),
            "items": [[i.job, i.day] for i in chunk],
            "now": run.started_at.isoformat(),
            "finished": finished,
            "total": len(items),
        }
        for r in chunk_task(payload, run.operation_id, label):
            outcomes[Item(r["job"], r["day"])] = ItemResult(**r)
        finished += len(chunk)
        plain.update_progress(progress_id, 100.0 * finished / total)
    summary = summarize(request, {i: outcomes[i] for i in items})
    run.counts.update(
        items=summary["items"],
        work_seconds=summary["work_seconds"],
        item_seconds=summary["item_seconds"],
        **summary["outcomes"],
    )
    plain.artifact(
        "table",
        table=markdown.rows(summary["table"]),
        key="backfill-outcomes",
        description=f"backfill {request.start}..{request.end}: outcome per day and job",
    )
    plain.artifact(
        "markdown",
        markdown=table_markdown(request, {i: outcomes[i] for i in items}),
        key="backfill-summary",
        description="backfill outcomes and what was not done cleanly",
    )
    log.info("backfill finished", request=request.key, outcomes=summary["outcomes"])
    return outcome_of(summary)


# The form's values are checked by the flow itself (validate: one line naming the field, "Bad input"),
# not by Prefect's parameter validation (a multi-line error and a traceback in the run's logs).
@flow(name="backfill", log_prints=False, validate_parameters=False)
def backfill_flow(
    start: date,
    end: date,
    jobs: list[BackfillJob] | None = None,
    force: bool = False,
    target: TargetName | None = None,
) -> State[Any]:
    """Re-run quality/capacity (and partitions, views) for the UTC days start..end.

    Days already done by the same backfill (same range and jobs) keep their recorded outcome
    unless ``force``; ``force`` also lifts the backfill.max_days limit.

    Args:
        start: First UTC day to re-run (YYYY-MM-DD).
        end: Last UTC day to re-run (YYYY-MM-DD), included; not in the future.
        jobs: Jobs to re-run for each day. Empty: quality and capacity.
        force: Re-run days this backfill already did, and allow more than backfill.max_days days.
        target: The database (a [targets] name of the policy file). Empty: every target.
    """

    def plan() -> lifecycle.Planned:  # in each target: "no future days" by its clock
        with runtime.connection() as conn:  # "no future days" by the database's today: the rows are its
            today = clock.db_now(conn).date()
            try:
                request = validate(
                    start, end, jobs, force=force, policy=settings.current_policy().backfill, today=today
                )
            except ConfigError as exc:  # refused: kept in the ledger as 'rejected' (the report shows it)
                given = rejected.as_given(start, end, jobs, force, source="flow run")
                rejected.record(conn, given, exc, flow_run_id=runtime.current_flow_run_id())
                raise
        # One run of the same request at a time; backfills of other ranges may run side by side
        # (their items take the jobs' own locks).
        return lifecycle.Planned(
            work=lambda run: backfill_run(run, request), params=request.params(), day=request.key
        )

    return lifecycle.run_flow(JOB, plan=plan, target=target)


# ---------------------------------------------------------------- CLI (``pgtender backfill``)


__all__ = [
    "JOB",
    "Item",
    "ItemOutcome",
    "ItemResult",
    "Request",
    "backfill",
    "backfill_flow",
    "backfill_run",
    "chunks",
    "finished_since",
    "outcome_of",
    "progress_listener",
    "run_item",
    "table_markdown",
    "validate",
]
