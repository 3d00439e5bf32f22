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
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from prefect import flow, task
from psycopg.types.json import Jsonb

from flows import db, locks, runtime, settings
from flows.core import clock
from flows.db import load_sql
from flows.errors import ConfigError, InfrastructureError, ProblemsFound
from flows.logs import get_logger
from flows.masking import mask_secrets

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "backfill"
RANGE_FIRST = ("partitions",)  # once, before the days
DAY_JOBS = ("quality", "capacity")  # per day, in this order
RANGE_LAST = ("views",)  # once, after the days
KNOWN_JOBS = RANGE_FIRST + DAY_JOBS + RANGE_LAST
DEFAULT_JOBS = ("quality", "capacity")
RANGE = "range"  # the `day` of a range job's item
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Outcomes of one item. done: ran and found nothing wrong; problems: ran and found problems
# (failed checks, failed view refresh); busy: the job's lock stayed held; error: it raised.
DONE, PROBLEMS, BUSY, ERROR, SKIPPED = "done", "problems", "busy", "error", "skipped"
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "day": self.day,
            "outcome": self.outcome,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
            "counts": self.counts,
            "work_seconds": round(self.work_seconds, 4),
        }


def _parse_day(value: Any, what: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = str(value).strip() if value is not None else ""
    if not _DAY_RE.match(text):
        raise ConfigError(f"--{what} must be a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--{what} {value!r} is not a valid calendar date") from None


def parse_jobs(jobs: Sequence[str] | str | None) -> tuple[str, ...]:
    """``["quality", "capacity"]`` or ``"quality,capacity"``; None: the default jobs."""
    if jobs is None:
        return DEFAULT_JOBS
    raw = [jobs] if isinstance(jobs, str) else list(jobs)
    names = [part.strip() for item in raw for part in str(item).split(",") if part.strip()]
    if not names:
        raise ConfigError(f"--jobs is empty; known jobs: {','.join(KNOWN_JOBS)}")
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
    first, last = _parse_day(start, "start"), _parse_day(end, "end")
    today = today or clock.today()
    if first > last:
        raise ConfigError(f"--start {first} is after --end {last}")
    if last > today:
        raise ConfigError(f"--end {last} is in the future (today is {today} UTC)")
    span = (last - first).days + 1
    if span > policy.max_days and not force:
        raise ConfigError(
            f"{span} days exceed backfill.max_days = {policy.max_days}; use --force to backfill them anyway"
        )
    return Request(first, last, parse_jobs(jobs), force)


# ---------------------------------------------------------------- locks and progress records


@contextmanager
def item_lock(conn: Conn, item: Item, *, wait_seconds: float, poll: float = 0.25) -> Iterator[bool]:
    """Hold the job's lock and the (job, day) lock (``flows.locks``' keys: scheduled runs take one).

    Both locks are tried and released in one round
    trip each. Waits up to ``wait_seconds`` for a running scheduled run to finish; yields False
    when it did not. Session-level locks on ``conn``: the work's transactions do not release them.
    """
    keys = {"job": item.job, "job_day": locks.day_key(item.job, item.day)}
    deadline = time.monotonic() + wait_seconds
    while True:
        row = conn.execute(load_sql("queries/backfill/try_locks.sql"), keys).fetchone()
        held = {"job_lock": bool(row and row[0]), "day_lock": bool(row and row[1])}
        if all(held.values()):
            try:
                yield True
            finally:
                if not conn.closed:
                    conn.execute(load_sql("queries/backfill/unlock.sql"), {**keys, **held})
            return
        if any(held.values()):
            conn.execute(load_sql("queries/backfill/unlock.sql"), {**keys, **held})
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def completed_items(conn: Conn, request: Request) -> dict[Item, str]:
    """Items of this request that a previous run finished (done or problems), with their outcome."""
    rows = conn.execute(load_sql("queries/backfill/done.sql"), {"request": request.key}).fetchall()
    return {Item(str(job), str(day)): str(outcome) for day, job, outcome in rows}


def finished_since(conn: Conn, request_key: str, since: datetime) -> int:
    row = conn.execute(
        load_sql("queries/backfill/progress.sql"), {"request": request_key, "since": since}
    ).fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------- the jobs' cores for one item


@dataclass(frozen=True)
class Context:
    """What the item runners need besides the connection (all plain values)."""

    policy: settings.Policy
    now: datetime
    flow_run_id: str | None = None
    operation_id: UUID | None = None
    gx_runner_factory: Callable[[settings.QualityPolicy], Any] | None = None
    days: tuple[date, date] | None = None  # the request's range: what rollups recompute


def day_end(day: date) -> datetime:
    """The last second of a UTC day: the fixed instant a day's capacity projection is written at."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, seconds=-1)


def run_quality(conn: Conn, day: date, ctx: Context) -> tuple[str, str, dict[str, Any]]:
    from flows import quality  # noqa: PLC0415 - GX machinery only when quality is backfilled

    policy = ctx.policy.quality
    suites = quality.select_suites(None, policy)
    gx_runner = ctx.gx_runner_factory(policy) if ctx.gx_runner_factory else None
    runs = quality.run_suites(
        conn,
        suites,
        quality.day_window(day, ctx.now),
        policy,
        flow_run_id=ctx.flow_run_id,
        gx_runner=gx_runner,
    )
    failing = [r for r in runs if r.status in ("failed", "error")]
    counts = {
        "suites": len(runs),
        "suites_failed": len(failing),
        "scores": {r.suite.name: r.score for r in runs},
    }
    if failing:
        return PROBLEMS, ", ".join(f"{r.suite.name} {r.status}" for r in failing), counts
    return DONE, f"{len(runs)} suites passed or skipped", counts


def run_capacity(conn: Conn, day: date, ctx: Context) -> tuple[str, str, dict[str, Any]]:
    """Projections as of the day's end from the history up to it; today also takes a snapshot."""
    from flows import capacity  # noqa: PLC0415

    policy = ctx.policy.capacity
    snapshot = 0
    if day >= ctx.now.date():
        as_of = ctx.now.replace(microsecond=0)
        snapshot = capacity.measure_and_record(
            conn,
            exact_count_max_rows=policy.exact_count_max_rows,
            flow_run_id=ctx.flow_run_id,
            operation_id=ctx.operation_id,
        )
    else:
        as_of = day_end(day)
    written, projections = capacity.project_and_record(
        conn, policy=policy, now=as_of, flow_run_id=ctx.flow_run_id, operation_id=ctx.operation_id
    )
    soon = [p for p in projections if p.within_horizon]
    counts = {"snapshot_metrics": snapshot, "projection_metrics": written, "projections": len(projections)}
    if not projections:
        return DONE, "no projection: not enough history up to this day", counts
    detail = f"{len(projections)} projections"
    if soon:
        detail += f", {len(soon)} reach their threshold within the horizon"
    return DONE, detail, counts


def run_partitions(conn: Conn, ctx: Context) -> tuple[str, str, dict[str, Any]] | None:
    """The partitions job's core (it takes its own lock; None: a scheduled run holds it)."""
    from flows import partitions  # noqa: PLC0415

    results = partitions.run_once(conn, ctx.policy.partitions)
    if results is None:
        return None
    counts = {
        "partitions_created": sum(len(r.created) for r in results),
        "rows_moved": sum(r.rows_moved for r in results),
        "default_rows_left": sum(r.default_rows for r in results),
    }
    return DONE, f"{counts['partitions_created']} created, {counts['rows_moved']} rows moved", counts


def run_views(conn: Conn, ctx: Context) -> tuple[str, str, dict[str, Any]]:
    from flows import views  # noqa: PLC0415

    results = views.refresh_all(
        conn, ctx.policy.views, flow_run_id=ctx.flow_run_id, operation_id=ctx.operation_id, days=ctx.days
    )
    failed = [r.view for r in results if r.status == "failed"]
    counts = {"refreshed": len(results) - len(failed), "failed": len(failed)}
    if failed:
        return PROBLEMS, "refresh failed: " + ", ".join(failed), counts
    return DONE, f"{len(results)} views refreshed", counts


def _work(conn: Conn, item: Item, ctx: Context) -> tuple[str, str, dict[str, Any]] | None:
    if item.job == "quality":
        return run_quality(conn, date.fromisoformat(item.day), ctx)
    if item.job == "capacity":
        return run_capacity(conn, date.fromisoformat(item.day), ctx)
    if item.job == "views":
        return run_views(conn, ctx)
    if item.job == "partitions":
        return run_partitions(conn, ctx)
    raise ConfigError(f"unknown backfill job {item.job!r}")


def record_item(
    conn: Conn, request: Request, result: ItemResult, ctx: Context, *, status: str, error: str | None = None
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


def run_item(conn: Conn, request: Request, item: Item, ctx: Context) -> ItemResult:
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
            with item_lock(conn, item, wait_seconds=wait) as got:
                out = work() if got else None
    except (psycopg.Error, InfrastructureError, ConfigError, ProblemsFound) as exc:
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
    conn: Conn, request: Request, items: list[Item], ctx: Context, *, finished: int = 0, total: int = 0
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
        "work_seconds": round(sum(r.work_seconds for r in outcomes.values()), 4),
        "item_seconds": round(sum(r.seconds for r in outcomes.values()), 4),
        "table": outcome_table(request, outcomes),
        "not_done": [r.as_dict() for r in outcomes.values() if r.outcome in (PROBLEMS, ERROR, BUSY)],
    }


def raise_for(summary: dict[str, Any]) -> None:
    """Exit codes: errors/busy items -> 3 (resume later), problems found -> 1."""
    by = summary["outcomes"]
    if by.get(ERROR) or by.get(BUSY):
        raise InfrastructureError(
            f"backfill {summary['start']}..{summary['end']}: {by.get(ERROR, 0)} item(s) failed,"
            f" {by.get(BUSY, 0)} busy; run the same command again to resume"
        )
    if by.get(PROBLEMS):
        first = next(r for r in summary["not_done"] if r["outcome"] == PROBLEMS)
        raise ProblemsFound(
            f"backfill {summary['start']}..{summary['end']}: {by[PROBLEMS]} item(s) found problems"
            f" (first: {first['job']} {first['day']}: {first['detail']})"
        )


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
    ctx = Context(
        policy,
        now or clock.db_now(conn),
        flow_run_id,
        operation_id,
        _gx_runner_factory,
        (request.start, request.end),
    )
    items, done = plan(conn, request)
    outcomes: dict[Item, ItemResult] = {
        i: ItemResult(i.job, i.day, SKIPPED, f"already {o} in this backfill") for i, o in done.items()
    }
    todo = [i for i in items if i not in done]
    finished = len(done)
    for chunk in chunks(todo, policy.backfill.chunk_days):
        for result in run_chunk(conn, request, chunk, ctx, finished=finished, total=len(items)):
            outcomes[Item(result.job, result.day)] = result
        finished += len(chunk)
    return summarize(request, {i: outcomes[i] for i in items})


# ---------------------------------------------------------------- Prefect


def _gx_runner_factory(policy: settings.QualityPolicy) -> Any:
    """Like the quality flow: expectation types the fused scan lacks run through GX (lazily)."""
    from checks import Suite  # noqa: PLC0415
    from flows import quality  # noqa: PLC0415

    current = settings.load_settings()
    dsn = settings.dsn(current)

    def runner(suite: Suite, window: Any, facts: list[Any]) -> list[Any]:
        size = quality.sample_size_for(suite, policy)
        return quality.gx_outcomes(current.state_dir, dsn, suite, window, facts, sample_size=size)

    return runner


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
    ctx = Context(
        policy,
        datetime.fromisoformat(chunk["now"]),
        runtime.current_flow_run_id(),
        operation_id,
        _gx_runner_factory,
        (request.start, request.end),
    )
    items = [Item(job, day) for job, day in chunk["items"]]
    with runtime.connection() as conn:
        results = run_chunk(conn, request, items, ctx, finished=chunk["finished"], total=chunk["total"])
    return [r.as_dict() for r in results]


@flow(name="backfill", log_prints=False)
def backfill_flow(start: str, end: str, jobs: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Re-run quality/capacity (and partitions, views) for the UTC days start..end (YYYY-MM-DD).

    Days already done by the same backfill (same range and jobs) are skipped unless ``force``;
    ``force`` also lifts the backfill.max_days limit.
    """
    from prefect.artifacts import (  # noqa: PLC0415
        create_markdown_artifact,
        create_progress_artifact,
        create_table_artifact,
        update_progress_artifact,
    )

    log = get_logger(job=JOB)
    policy = settings.current_policy()
    with runtime.connection() as conn:
        now = clock.db_now(conn)
        # "No future days" by the database's today: the days' rows and results are its.
        request = validate(start, end, jobs, force=force, policy=policy.backfill, today=now.date())
        if db.is_replica(conn):
            raise ConfigError("this server is a replica: backfill must run on the primary")
        items, done = plan(conn, request)
    with runtime.ledger_entry(JOB, request.params()) as op:
        todo = [i for i in items if i not in done]
        outcomes: dict[Item, ItemResult] = {
            i: ItemResult(i.job, i.day, SKIPPED, f"already {o} in this backfill") for i, o in done.items()
        }
        total = max(1, len(items))
        progress_id: UUID = create_progress_artifact(  # type: ignore[assignment]
            progress=100.0 * len(done) / total,
            key="backfill-progress",
            description=f"backfill {request.start}..{request.end} ({', '.join(request.jobs)})",
        )
        log.info(
            "backfill started",
            request=request.key,
            items=len(items),
            already_done=len(done),
            force=request.force,
        )
        finished = len(done)
        for chunk in chunks(todo, policy.backfill.chunk_days):
            days = sorted({i.day for i in chunk})
            label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
            payload = {
                "request": request.params(),
                "items": [[i.job, i.day] for i in chunk],
                "now": now.isoformat(),
                "finished": finished,
                "total": len(items),
            }
            results = chunk_task(payload, op.operation_id, label)
            for r in results:
                outcomes[Item(r["job"], r["day"])] = ItemResult(**r)
            finished += len(chunk)
            update_progress_artifact(progress_id, progress=100.0 * finished / total)
        summary = summarize(request, {i: outcomes[i] for i in items})
        op.counts.update(
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
        if summary["outcomes"].get(ERROR) or summary["outcomes"].get(BUSY):
            raise_for(summary)
    raise_for(summary)  # problems found: the ledger row is completed, the run ends Failed (exit 1)
    return summary


# ---------------------------------------------------------------- CLI (``pgtender backfill``)

DEPLOYMENT = "backfill/backfill"


def _policy_and_request(start: str, end: str, jobs: str | None, force: bool) -> Request:
    policy = settings.current_policy()
    return validate(start, end, jobs, force=force, policy=policy.backfill)


def cli_local(
    start: str, end: str, jobs: str | None, force: bool, *, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Validate, then run the backfill flow in this process with a progress bar on stderr."""
    import typer  # noqa: PLC0415

    from flows.jobs import run_job  # noqa: PLC0415

    request = _policy_and_request(start, end, jobs, force)  # ConfigError before anything runs
    total = len(request.items())
    bar_label = f"backfill {request.start}..{request.end}"
    with typer.progressbar(length=total, label=bar_label, file=sys.stderr) as bar:

        def advance(result: ItemResult, finished: int, _total: int) -> None:
            bar.label = f"{result.job} {result.day}: {result.outcome}"
            bar.update(max(0, finished - bar.pos))

        with progress_listener(advance):
            try:
                summary: dict[str, Any] = run_job(
                    JOB, {"start": start, "end": end, "jobs": list(request.jobs), "force": force}
                )
            finally:
                bar.update(max(0, total - bar.pos))
    echo(table_text(summary))
    return summary


def table_text(summary: dict[str, Any]) -> str:
    jobs = summary["jobs"]
    widths = [10, *[max(8, len(j)) for j in jobs]]
    head = "  ".join(h.ljust(w) for h, w in zip(["day", *jobs], widths, strict=True))
    lines = [head]
    for row in summary["table"]:
        lines.append("  ".join(str(row[k]).ljust(w) for k, w in zip(["day", *jobs], widths, strict=True)))
    by = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
    lines.append(f"{summary['items']} items: {by}")
    return "\n".join(lines)


def cli_deployment(
    start: str,
    end: str,
    jobs: str | None,
    force: bool,
    *,
    watch: bool,
    name: str,
    echo: Callable[[str], None],
    poll_seconds: float = 1.0,
) -> str:
    """Trigger the ``backfill`` deployment; with ``watch`` follow it (progress from the ledger)."""
    import typer  # noqa: PLC0415
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.objects import FlowRun  # noqa: PLC0415
    from prefect.deployments import run_deployment  # noqa: PLC0415

    request = _policy_and_request(start, end, jobs, force)
    params = {"start": start, "end": end, "jobs": list(request.jobs), "force": force}
    with runtime.connection() as conn:  # the ledger's clock: its rows say when items finished
        since = clock.db_now(conn) - timedelta(seconds=5)
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]
        name, parameters=params, timeout=0, as_subflow=False
    )
    echo(f"triggered {name}: flow run {flow_run.name} ({flow_run.id})")
    if not watch:
        return str(flow_run.id)
    total = len(request.items())
    with (
        get_client(sync_client=True) as client,
        runtime.connection() as conn,
        typer.progressbar(
            length=total, label=f"backfill {request.start}..{request.end}", file=sys.stderr
        ) as bar,
    ):
        while True:
            run = client.read_flow_run(flow_run.id)
            bar.update(max(0, min(total, finished_since(conn, request.key, since)) - bar.pos))
            if run.state is not None and run.state.is_final():
                break
            time.sleep(poll_seconds)
        bar.update(max(0, total - bar.pos))
    state = run.state
    echo(f"flow run {flow_run.name}: {state.name if state else 'unknown'}")
    if state is not None and not state.is_completed():
        message = state.message or state.name or "unknown"
        if "ProblemsFound" in message:
            raise ProblemsFound(f"backfill found problems: {message}")
        if "ConfigError" in message:
            raise ConfigError(f"backfill rejected: {message}")
        raise InfrastructureError(f"backfill flow run ended {state.name}: {message}")
    return str(flow_run.id)
