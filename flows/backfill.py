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

import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import psycopg
from prefect import flow, task
from prefect.client.schemas.objects import State
from psycopg.types.json import Jsonb

from flows.core import clock, db, lifecycle, locks, runtime, settings
from flows.core.db import load_sql
from flows.core.errors import ConfigError, InfrastructureError
from flows.core.errors import ProblemsFound as ProblemsError
from flows.core.forms import BackfillJob, TargetName
from flows.core.logs import get_logger
from flows.core.masking import mask_secrets
from flows.core.outcomes import Done, Outcome, ProblemsFound
from flows.core.replay import ReplayContext, replay_for

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "backfill"
RANGE_FIRST = ("partitions",)  # once, before the days
DAY_JOBS = ("quality", "capacity")  # per day, in this order
RANGE_LAST = ("views",)  # once, after the days
KNOWN_JOBS = RANGE_FIRST + DAY_JOBS + RANGE_LAST
DEFAULT_JOBS = ("quality", "capacity")
RANGE = "range"  # the `day` of a range job's item


class ItemOutcome(StrEnum):
    """done: ran and found nothing wrong; problems: ran and found problems (failed checks, failed
    view refresh); busy: the job's lock stayed held; error: it raised."""

    DONE = "done"
    PROBLEMS = "problems"
    BUSY = "busy"
    ERROR = "error"


DONE, PROBLEMS, BUSY, ERROR = ItemOutcome.DONE, ItemOutcome.PROBLEMS, ItemOutcome.BUSY, ItemOutcome.ERROR
FINISHED = (DONE, PROBLEMS)  # what a resume does not repeat


# ---------------------------------------------------------------- the request


@dataclass(frozen=True)
class Request:
    start: date
    end: date
    jobs: tuple[str, ...]  # in execution order
    force: bool = False

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def key(self) -> str:
        """The identity of 'this backfill' for resuming: the range and the jobs (not --force)."""
        raw = json.dumps([self.start.isoformat(), self.end.isoformat(), list(self.jobs)])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def params(self) -> dict[str, Any]:
        return {
            "request": self.key,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "jobs": list(self.jobs),
            "force": self.force,
        }

    def items(self) -> list[Item]:
        out = [Item(job, RANGE) for job in RANGE_FIRST if job in self.jobs]
        out += [Item(job, d.isoformat()) for d in self.days for job in DAY_JOBS if job in self.jobs]
        out += [Item(job, RANGE) for job in RANGE_LAST if job in self.jobs]
        return out


@dataclass(frozen=True)
class Item:
    job: str
    day: str  # YYYY-MM-DD, or "range"


@dataclass
class ItemResult:
    job: str
    day: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0  # the whole item: ledger rows, locks, the work
    counts: dict[str, Any] = field(default_factory=dict)
    work_seconds: float = 0.0  # the job's core alone (bench/backfill.py: overhead = the rest)
    earlier: bool = False  # not re-run: the outcome a previous run of the same request recorded

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "day": self.day,
            "outcome": self.outcome,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
            "counts": self.counts,
            "work_seconds": round(self.work_seconds, 4),
            "earlier": self.earlier,
        }


def parse_jobs(jobs: Sequence[str] | str | None) -> tuple[str, ...]:
    """``["quality", "capacity"]`` or ``"quality,capacity"``; None: the default jobs."""
    if jobs is None:
        return DEFAULT_JOBS
    raw = [jobs] if isinstance(jobs, str) else list(jobs)
    names = [part.strip() for item in raw for part in str(item).split(",") if part.strip()]
    if not names:
        raise ConfigError(f"jobs is empty; known jobs: {','.join(KNOWN_JOBS)}")
    unknown = [n for n in names if n not in KNOWN_JOBS]
    if unknown:
        raise ConfigError(f"unknown backfill job {unknown[0]!r}; known jobs: {','.join(KNOWN_JOBS)}")
    return tuple(job for job in KNOWN_JOBS if job in names)


def validate(
    start: Any,
    end: Any,
    jobs: Sequence[str] | str | None = None,
    *,
    force: bool = False,
    today: date | None = None,
    policy: settings.BackfillPolicy | None = None,
) -> Request:
    """Check a backfill request before anything is touched; ConfigError names the first problem."""
    policy = policy or settings.BackfillPolicy()
    first, last = clock.parse_day(start, "start"), clock.parse_day(end, "end")
    today = today or clock.today()
    if first > last:
        raise ConfigError(f"start {first} is after end {last}")
    if last > today:
        raise ConfigError(f"end {last} is in the future (today is {today} UTC)")
    span = (last - first).days + 1
    if span > policy.max_days and not force:
        raise ConfigError(
            f"{span} days exceed backfill.max_days = {policy.max_days};"
            " set force (--force) to backfill them anyway"
        )
    return Request(first, last, parse_jobs(jobs), force)


# ---------------------------------------------------------------- locks and progress records


def item_locks(item: Item) -> list[str]:
    """The job's own lock (what its scheduled flow takes) and the (job, day) lock."""
    return [locks.lock_name(item.job), locks.lock_name(item.job, item.day)]


def completed_items(conn: Conn, request: Request) -> dict[Item, str]:
    """Items of this request that a previous run finished (done or problems), with their outcome."""
    rows = conn.execute(load_sql("queries/backfill/done.sql"), {"request": request.key}).fetchall()
    return {Item(str(job), str(day)): str(outcome) for day, job, outcome in rows}


def finished_since(conn: Conn, request_key: str, since: datetime) -> int:
    row = conn.execute(
        load_sql("queries/backfill/progress.sql"), {"request": request_key, "since": since}
    ).fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------- one item


def _work(conn: Conn, item: Item, ctx: ReplayContext) -> tuple[str, str, dict[str, Any]] | None:
    """The job's replay for the item; None when another run held the job's lock."""
    if item.job not in KNOWN_JOBS:
        raise ConfigError(f"unknown backfill job {item.job!r}")
    day = None if item.day == RANGE else date.fromisoformat(item.day)
    out = replay_for(item.job)(conn, day, ctx)
    if out is None:
        return None
    return (PROBLEMS if out.problems else DONE), out.detail, out.counts


def record_item(
    conn: Conn,
    request: Request,
    result: ItemResult,
    ctx: ReplayContext,
    *,
    status: str,
    error: str | None = None,
) -> None:
    """The item's ledger row, written once it ended (one round trip; what a resume reads)."""
    params = {**request.params(), "item": True, "job": result.job, "day": result.day}
    if ctx.operation_id is not None:
        params["parent"] = str(ctx.operation_id)
    counts = {**result.counts, "outcome": result.outcome, "detail": result.detail}
    conn.execute(
        load_sql("queries/backfill/record_item.sql"),
        {
            "status": status,
            "seconds": result.seconds,
            "flow_run_id": ctx.flow_run_id,
            "params": Jsonb(params),
            "counts": Jsonb(counts),
            "error": None if error is None else mask_secrets(error)[:2000],
            "host": socket.gethostname(),
        },
    )


def run_item(conn: Conn, request: Request, item: Item, ctx: ReplayContext) -> ItemResult:
    """One (job, day): the locks, the job's core, a ledger row. Errors become an 'error' result."""
    started = time.perf_counter()
    wait = ctx.policy.backfill.lock_wait_seconds
    clock = [0.0]  # seconds inside the job's core (the rest of the item is locks and the ledger)

    def work() -> tuple[str, str, dict[str, Any]] | None:
        began = time.perf_counter()
        try:
            return _work(conn, item, ctx)
        finally:
            clock[0] += time.perf_counter() - began

    try:
        if item.job == "partitions":  # run_once takes the partitions lock itself
            deadline = time.monotonic() + wait
            while (out := work()) is None and time.monotonic() < deadline:
                time.sleep(0.25)
        else:
            with locks.all_locks(conn, item_locks(item), wait_seconds=wait) as got:
                out = work() if got else None
    except (psycopg.Error, InfrastructureError, ConfigError, ProblemsError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        get_logger(job=JOB, item_job=item.job, day=item.day).error("backfill item failed", error=message)
        failed = ItemResult(item.job, item.day, ERROR, message[:300], time.perf_counter() - started)
        record_item(conn, request, failed, ctx, status="failed", error=f"{type(exc).__name__}: {message}")
        return failed
    if out is None:
        reason = f"a {item.job} run held the job lock for more than {wait:g} s"
        get_logger(job=JOB, item_job=item.job, day=item.day).warning("backfill item busy", reason=reason)
        busy = ItemResult(item.job, item.day, BUSY, reason, time.perf_counter() - started)
        record_item(conn, request, busy, ctx, status="skipped", error=reason)
        return busy
    outcome, detail, counts = out
    result = ItemResult(item.job, item.day, outcome, detail, time.perf_counter() - started, counts, clock[0])
    record_item(conn, request, result, ctx, status="completed")
    return result


# ---------------------------------------------------------------- plain driver (no Prefect)

ProgressListener = Callable[[ItemResult, int, int], None]
_listeners: list[ProgressListener] = []


@contextmanager
def progress_listener(callback: ProgressListener) -> Iterator[None]:
    """Call ``callback(result, finished, total)`` after every item run in this process (CLI bar)."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


def _emit(result: ItemResult, finished: int, total: int) -> None:
    for callback in list(_listeners):
        callback(result, finished, total)


def plan(conn: Conn, request: Request) -> tuple[list[Item], dict[Item, str]]:
    """All items in order, and those a previous run of the same request finished (empty on force)."""
    items = request.items()
    done = {} if request.force else completed_items(conn, request)
    return items, {i: o for i, o in done.items() if i in set(items) and o in FINISHED}


def chunks(items: list[Item], chunk_days: int) -> list[list[Item]]:
    """Range-first items alone, then day items ``chunk_days`` days at a time, then range-last ones."""
    first = [i for i in items if i.day == RANGE and i.job in RANGE_FIRST]
    last = [i for i in items if i.day == RANGE and i.job in RANGE_LAST]
    days = sorted({i.day for i in items if i.day != RANGE})
    out: list[list[Item]] = [first] if first else []
    for n in range(0, len(days), chunk_days):
        window = set(days[n : n + chunk_days])
        out.append([i for i in items if i.day in window])
    if last:
        out.append(last)
    return out


def run_chunk(
    conn: Conn, request: Request, items: list[Item], ctx: ReplayContext, *, finished: int = 0, total: int = 0
) -> list[ItemResult]:
    results = []
    for item in items:
        result = run_item(conn, request, item, ctx)
        results.append(result)
        _emit(result, finished + len(results), total)
    return results


def outcome_table(request: Request, outcomes: dict[Item, ItemResult]) -> list[dict[str, Any]]:
    """Days x jobs: one row per day, one column per job (range jobs show their single outcome)."""
    rows = []
    for d in request.days:
        row: dict[str, Any] = {"day": d.isoformat()}
        for job in request.jobs:
            day = RANGE if job in RANGE_FIRST + RANGE_LAST else d.isoformat()
            res = outcomes.get(Item(job, day))
            row[job] = "-" if res is None else res.outcome
        rows.append(row)
    return rows


def table_markdown(request: Request, outcomes: dict[Item, ItemResult]) -> str:
    rows = outcome_table(request, outcomes)
    head = "| day | " + " | ".join(request.jobs) + " |"
    lines = [
        f"# Backfill {request.start} .. {request.end}",
        "",
        head,
        "|---|" + "---|" * len(request.jobs),
    ]
    lines += ["| " + " | ".join(str(r[k]) for k in ["day", *request.jobs]) + " |" for r in rows]
    notes = [r for r in outcomes.values() if r.outcome in (PROBLEMS, ERROR, BUSY)]
    if notes:
        lines += ["", "## Not done cleanly", ""]
        lines += [f"- {r.job} {r.day}: {r.outcome}: {r.detail}" for r in notes]
    ranged = [j for j in request.jobs if j in RANGE_FIRST + RANGE_LAST]
    if ranged:
        lines += ["", f"{', '.join(ranged)}: once for the whole range (shown on every day)."]
    return "\n".join(lines)


def summarize(request: Request, outcomes: dict[Item, ItemResult]) -> dict[str, Any]:
    by: dict[str, int] = {}
    for r in outcomes.values():
        by[r.outcome] = by.get(r.outcome, 0) + 1
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


def carried_forward(done: dict[Item, str]) -> dict[Item, ItemResult]:
    """Items a previous run of the same request finished keep their recorded outcome (problems stay
    problems) and say so, instead of looking freshly done."""
    return {
        i: ItemResult(i.job, i.day, o, f"{o} earlier in this backfill (not re-run)", earlier=True)
        for i, o in done.items()
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
    return Done(result=summary, message=f"{span}: {summary['items']} item(s) done")


def backfill(
    conn: Conn,
    request: Request,
    *,
    policy: settings.Policy,
    now: datetime | None = None,
    flow_run_id: str | None = None,
    operation_id: UUID | None = None,
) -> dict[str, Any]:
    """The whole backfill without Prefect (one connection, plain calls). Returns the summary."""
    if db.is_replica(conn):
        raise ConfigError("this server is a replica: backfill writes results and must run on the primary")
    ctx = ReplayContext(
        policy=policy,
        now=now or clock.db_now(conn),
        flow_run_id=flow_run_id,
        operation_id=operation_id,
        days=(request.start, request.end),
    )
    items, done = plan(conn, request)
    outcomes = carried_forward(done)
    todo = [i for i in items if i not in done]
    finished = len(done)
    for chunk in chunks(todo, policy.backfill.chunk_days):
        for result in run_chunk(conn, request, chunk, ctx, finished=finished, total=len(items)):
            outcomes[Item(result.job, result.day)] = result
        finished += len(chunk)
    return summarize(request, {i: outcomes[i] for i in items})


# ---------------------------------------------------------------- Prefect


@task(
    name="backfill-chunk",
    retries=1,
    retry_delay_seconds=[5],
    retry_condition_fn=runtime.retry_transient_only,
    # No tags, like every pgtender task (see runtime.db_task): the flow run carries them.
    task_run_name="backfill-{label}",
)
def chunk_task(chunk: dict[str, Any], operation_id: UUID, label: str) -> list[dict[str, Any]]:
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


def backfill_run(run: lifecycle.Run, request: Request) -> Outcome:
    """The job's work inside the lifecycle: chunks of items, progress and outcome artifacts."""
    from prefect.artifacts import (  # noqa: PLC0415
        create_markdown_artifact,
        create_progress_artifact,
        create_table_artifact,
        update_progress_artifact,
    )

    log = get_logger(job=JOB)
    with runtime.connection() as conn:
        items, done = plan(conn, request)
    todo = [i for i in items if i not in done]
    outcomes = carried_forward(done)
    total = max(1, len(items))
    progress_id: UUID = create_progress_artifact(  # type: ignore[assignment]
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
        update_progress_artifact(progress_id, progress=100.0 * finished / total)
    summary = summarize(request, {i: outcomes[i] for i in items})
    run.counts.update(
        items=summary["items"],
        work_seconds=summary["work_seconds"],
        item_seconds=summary["item_seconds"],
        **summary["outcomes"],
    )
    create_table_artifact(
        table=summary["table"],
        key="backfill-outcomes",
        description=f"backfill {request.start}..{request.end}: outcome per day and job",
    )
    create_markdown_artifact(
        markdown=table_markdown(request, {i: outcomes[i] for i in items}),
        key="backfill-summary",
        description="backfill outcomes and what was not done cleanly",
    )
    log.info("backfill finished", request=request.key, outcomes=summary["outcomes"])
    return outcome_of(summary)


@flow(name="backfill", log_prints=False)
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
        request = validate(
            start, end, jobs, force=force, policy=settings.current_policy().backfill, today=today
        )
        # One run of the same request at a time; backfills of other ranges may run side by side
        # (their items take the jobs' own locks).
        return lifecycle.Planned(
            work=lambda run: backfill_run(run, request), params=request.params(), day=request.key
        )

    return lifecycle.run_flow(JOB, plan=plan, target=target)


# ---------------------------------------------------------------- CLI (``pgtender backfill``)
