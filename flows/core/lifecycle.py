"""The one run lifecycle every job goes through, whatever starts it (schedule, UI, CLI, backfill):

    validate input -> replica check -> advisory lock (job[, day]) -> ledger start -> the job's work
    -> typed outcome (Done / Skipped / ProblemsFound) -> ledger finish -> Prefect final state

- Bad input fails before anything is touched (``ConfigError``: the run ends "Bad input").
- On a hot standby the job does nothing and says so (pg_partman's idiom): ``Skipped``.
- The lock is held by a session of its own for the whole run. Another run holding it: the run is
  recorded as skipped and ends "Skipped" (never "completed"). Losing the session (terminated,
  server restart) is noticed at the next step (``checkpoint()``, which every pgtender task calls)
  and before the ledger is finished: the run fails and never reports success.
- The ledger row is written by the lifecycle alone: completed, problems, skipped or failed, with
  the run's counts; ``started`` rows left by runs that died are marked abandoned by the next run.
- Findings are not crashes: ``ProblemsFound`` ends in a Failed state named "Problems found" with a
  one-line message and no traceback; errors end "Bad input" or "Infrastructure error", one line.

``execute`` is the lifecycle without Prefect (plain code, tests, backfill); ``run_flow`` wraps it
for a ``@flow`` and returns the final state.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
import structlog

from flows.core import alert_hooks, clock, db, ledger, locks, plain, settings, sweep, target_context, targets
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.errors import ProblemsFound as ProblemsError
from flows.core.logs import ensure_configured, get_logger
from flows.core.masking import mask_secrets
from flows.core.outcomes import (
    BAD_INPUT_STATE,
    INFRASTRUCTURE_STATE,
    PROBLEMS_STATE,
    SKIPPED_STATE,
    Done,
    Outcome,
    ProblemsFound,
    Skipped,
    Status,
)

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

Conn = psycopg.Connection[tuple[Any, ...]]


Planned = sweep.Planned


class LockLost(InfrastructureError):
    """The session holding the run's advisory lock is gone: another run may now be working."""


@dataclass(kw_only=True)
class Run:
    """One run of a job, as its work sees it: ids, the instant it started, counts for the ledger."""

    job: str
    params: dict[str, Any]
    operation_id: UUID
    flow_run_id: str | None
    started_at: datetime  # the database's now() when the run began
    policy: settings.Policy
    counts: dict[str, Any] = field(default_factory=dict)
    abandoned: list[ledger.Abandoned] = field(default_factory=list)  # earlier runs found dead
    _lock_conn: Conn
    _lock_names: list[str]

    @property
    def lock_pid(self) -> int:
        """The backend pid of the session holding the run's locks."""
        return self._lock_conn.info.backend_pid

    def check_lock(self) -> None:
        """Raise ``LockLost`` unless this run's session still holds every lock it took."""
        if self._lock_conn.closed or not all(locks.holds(self._lock_conn, n) for n in self._lock_names):
            raise LockLost(
                f"{self.job} lost its advisory lock (its session ended): stopped before the next step;"
                " another run may hold the lock now"
            )


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("pgtender_run", default=None)
_last: dict[str, Outcome] = {}  # job -> the outcome of its latest run in this process
_last_sweep: dict[str, list[sweep.TargetOutcome]] = {}  # job -> each target's, latest fleet sweep


def last_sweep(job: str) -> list[sweep.TargetOutcome]:
    """Each target's outcome in the latest fleet sweep of ``job`` in this process ([]: none)."""
    return list(_last_sweep.get(job, []))


def last_outcome(job: str) -> Outcome | None:
    """The outcome the latest run of ``job`` in this process recorded (None: none ran here)."""
    return _last.get(job)


def current_run() -> Run | None:
    return _current.get()


def checkpoint() -> None:
    """Between steps: stop when the run lost its lock (no-op outside a run)."""
    run = _current.get()
    if run is not None:
        run.check_lock()


def current_flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run  # noqa: PLC0415 - runtime context, read at call time
    except ImportError:  # pragma: no cover - prefect is a dependency
        return None
    run_id = flow_run.id
    return str(run_id) if run_id else None


@contextmanager
def connection() -> Iterator[Conn]:
    """An autocommit connection to the tended database, from the process pool."""
    current = settings.load_settings()
    policy = settings.current_policy(current)
    with db.pooled(
        settings.dsn(current), policy=policy.database, application_name=current.application_name
    ) as conn:
        yield conn


@contextmanager
def run_session() -> Iterator[Conn]:
    """The run's own session: a direct connection (never pooled) that checks for a replica, holds the
    run's advisory lock and writes its ledger row (its pid is the run's proof of life)."""
    current = settings.load_settings()
    policy = settings.current_policy(current)
    with db.connect(
        settings.dsn(current),
        policy=policy.database,
        application_name=f"{current.application_name}-lock",
        autocommit=True,
    ) as conn:
        yield conn


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return mask_secrets(text)


def as_pgtender_error(exc: BaseException) -> PgtenderError | None:
    """The pgtender error an exception means (None: a bug, left to propagate with its traceback)."""
    if isinstance(exc, PgtenderError):
        return exc
    if isinstance(exc, psycopg.Error):
        return InfrastructureError(f"database error: {type(exc).__name__}: {_one_line(exc)}")
    return None


def execute(
    job: str,
    work: Callable[[Run], Outcome],
    *,
    params: dict[str, Any] | None = None,
    day: object | None = None,
    validate: Callable[[], None] | None = None,
    session: Conn | None = None,
) -> Outcome:
    """Run ``work`` through the lifecycle; returns its outcome, raises ``PgtenderError`` on errors.

    ``day``: the run works on one day and locks (job, day) only — a run of another day (a backfill)
    does not make it skip. Errors are recorded in the ledger before they are raised.
    ``session``: the run's own session (``run_session``), when the caller opened it already.
    """
    params = dict(params or {})
    log = get_logger(job=job)
    if validate is not None:
        validate()  # ConfigError: nothing touched, no ledger row
    policy = settings.current_policy()
    names = [locks.lock_name(job, day)]
    flow_run_id = current_flow_run_id()
    with run_session() if session is None else nullcontext(session) as lock_conn:
        if db.is_replica(lock_conn):
            target = target_context.current()
            if target is not None and target.explicit and target.configured:
                raise ConfigError(
                    f"target {target.name!r} is a replica (hot standby): {job} writes; name its primary"
                )
            reason = f"this server is a replica (hot standby): {job} does nothing here"
            log.info(reason)
            return Skipped(reason=reason, result={"skipped": "replica"})
        got = locks.try_locks(lock_conn, names)
        if not all(got):
            locks.unlock(lock_conn, [n for n, g in zip(names, got, strict=True) if g])
            what = f"{job} for {day}" if day is not None else job
            reason = f"another {what} run holds the advisory lock: this run did nothing"
            with connection() as conn:
                op = ledger.start_operation(conn, job, params=params, flow_run_id=flow_run_id)
                ledger.skip_operation(conn, op.operation_id, reason)
            log.warning("skipped", reason=reason)
            return Skipped(reason=reason, result={"operation_id": str(op.operation_id), "skipped": reason})
        try:
            return _locked(
                job,
                work,
                params=params,
                policy=policy,
                flow_run_id=flow_run_id,
                lock_conn=lock_conn,
                names=names,
            )
        finally:
            if not lock_conn.closed:
                with suppress(psycopg.OperationalError):  # the session is gone, and its locks with it
                    locks.unlock(lock_conn, names)


def _locked(
    job: str,
    work: Callable[[Run], Outcome],
    *,
    params: dict[str, Any],
    policy: settings.Policy,
    flow_run_id: str | None,
    lock_conn: Conn,
    names: list[str],
) -> Outcome:
    # The lock session writes the ledger row: its pid is the run's proof of life (a later run marks
    # the row abandoned once that session is gone).
    op = ledger.start_operation(lock_conn, job, params=params, flow_run_id=flow_run_id)
    op.abandoned += abandon_ended_flow_runs(lock_conn, job, found_by=op.operation_id)
    for gone in op.abandoned:
        get_logger(job=job).warning(
            "an earlier run was abandoned",
            abandoned_operation_id=str(gone.operation_id),
            started_at=gone.started_at.isoformat(),
            found_at=gone.found_at.isoformat(),
            reason=gone.reason,
        )
    started_at = clock.db_now(lock_conn)
    run = Run(
        job=job,
        params=params,
        operation_id=op.operation_id,
        flow_run_id=flow_run_id,
        started_at=started_at,
        policy=policy,
        abandoned=op.abandoned,
        _lock_conn=lock_conn,
        _lock_names=names,
    )
    token = _current.set(run)
    try:
        with structlog.contextvars.bound_contextvars(
            job=job, flow_run_id=flow_run_id, operation_id=str(op.operation_id)
        ):
            try:
                outcome = work(run)
            except ProblemsError as exc:  # raised deep inside (e.g. a count that did not add up)
                outcome = ProblemsFound(findings=[_one_line(exc)], summary=f"{job} stopped on a problem")
            run.check_lock()
    except BaseException as exc:
        _fail(op.operation_id, exc, run.counts)
        raise
    finally:
        _current.reset(token)
    with connection() as conn:
        error = outcome.message if isinstance(outcome, ProblemsFound | Skipped) else None
        ledger.finish_operation(conn, op.operation_id, outcome.status, run.counts, error)
    _last[job] = outcome
    return outcome


def abandon_ended_flow_runs(conn: Conn, job: str, *, found_by: UUID) -> list[ledger.Abandoned]:
    """Open ledger rows of ``job`` whose Prefect flow run has ended (Completed, Failed, Crashed,
    Cancelled ...) without finishing them are abandoned. A flow run this Prefect API does not know
    proves nothing (it may be another server's): such a row is judged by its database session alone
    (``ledger.start_operation``). An unreachable API leaves rows as they are."""
    candidates = ledger.open_runs(conn, job, found_by=found_by)
    if not candidates or plain.is_plain():  # plain mode: no Prefect API to ask
        return []
    import httpx  # noqa: PLC0415
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    found: list[ledger.Abandoned] = []
    try:
        with get_client(sync_client=True) as client:
            for operation_id, flow_run_id in candidates:
                try:
                    state = client.read_flow_run(flow_run_id).state
                except ObjectNotFound:
                    continue
                if state is not None and state.is_final():
                    reason = (
                        f"abandoned: its flow run {flow_run_id} ended {state.name} without finishing"
                        f" the run; found by the next {job} run (operation {found_by})"
                    )
                    gone = ledger.abandon(conn, operation_id, reason)
                    if gone is not None:
                        found.append(gone)
    except (httpx.HTTPError, OSError) as exc:
        get_logger(job=job).warning(
            "Prefect API unavailable: open runs judged by their session only", error=str(exc)
        )
    return found


def _fail(operation_id: UUID, exc: BaseException, counts: dict[str, Any]) -> None:
    try:
        with connection() as conn:
            ledger.fail_operation(conn, operation_id, f"{type(exc).__name__}: {_one_line(exc)}", counts)
    except (psycopg.Error, PgtenderError) as ledger_exc:  # the database may be what failed
        get_logger().error("could not record the failure in the ledger", error=_one_line(ledger_exc))


def to_state(outcome: Outcome) -> State[Any]:
    """The flow run's final Prefect state for an outcome."""
    from prefect.states import Completed, Failed  # noqa: PLC0415 - core stays importable without Prefect

    if isinstance(outcome, ProblemsFound):
        return Failed(name=PROBLEMS_STATE, message=outcome.message, data=ProblemsError(outcome.message))
    if isinstance(outcome, Skipped):
        return Completed(name=SKIPPED_STATE, message=outcome.reason, data=outcome.result)
    return Completed(message=outcome.message or None, data=outcome.result)


def error_state(exc: PgtenderError) -> State[Any]:
    from prefect.states import Failed  # noqa: PLC0415

    name = BAD_INPUT_STATE if isinstance(exc, ConfigError) else INFRASTRUCTURE_STATE
    return Failed(name=name, message=_one_line(exc), data=exc)


def run_flow(
    job: str,
    work: Callable[[Run], Outcome] | None = None,
    *,
    target: str | None = None,
    plan: Callable[[], sweep.Planned] | None = None,
    params: dict[str, Any] | None = None,
    day: object | None = None,
    validate: Callable[[], None] | None = None,
) -> State[Any]:
    """``execute`` inside a ``@flow``, on ``target`` or every target of the fleet (one flow run,
    ``[fleet] concurrency`` targets at once): the final state, one line, no traceback for known errors.

    ``plan`` (instead of ``work``/``params``/``day``/``validate``) is called inside each target, for
    jobs whose run depends on the target (its clock's yesterday, its policy)."""
    ensure_configured()
    log = get_logger(job=job)
    if plan is None:
        if work is None:
            raise TypeError("run_flow needs work or plan")
        planned = sweep.Planned(work=work, params=dict(params or {}), day=day, validate=validate)
        plan = lambda: planned  # noqa: E731
    try:
        chosen = targets.select(target)  # every target resolved first: bad input touches none
    except PgtenderError as exc:
        log.error(f"{job} failed", error=str(exc), exit_code=exc.exit_code)
        return error_state(exc)
    if len(chosen) == 1 and not chosen[0].configured:  # the single target `default`: as always
        with target_context.using(chosen[0]):
            return _run_one(job, plan, log)
    results = sweep.sweep(
        job,
        chosen,
        functools.partial(_sweep_target, plan=plan),
        concurrency=settings.current_policy().fleet.concurrency,
        as_error=functools.partial(_infrastructure_alert, job),
    )
    sweep.publish(job, results)
    _last_sweep[job] = results
    fleet_outcome = sweep.combined(job, results)
    if fleet_outcome is not None:
        _last[job] = fleet_outcome
    state = sweep.final_state(job, results)
    log.info(f"{job} swept the fleet", worst_exit_code=sweep.worst(results), summary=state.message)
    return state


def _sweep_target(job: str, *, plan: Callable[[], sweep.Planned]) -> Outcome:
    """One target of a sweep: its session first (a replica is skipped, or refused when named, before
    anything is planned or validated), then the lifecycle on that same session."""
    with run_session() as conn:
        early = targets.replica_first(job, conn)
        if early is not None:
            return early
        planned = plan()
        return _execute_and_alert(
            job, planned.work, params=planned.params, day=planned.day, validate=planned.validate, session=conn
        )


def _execute_and_alert(job: str, work: Callable[[Run], Outcome], **options: Any) -> Outcome:
    """``execute``, then the job's infrastructure alert (``job.<job>`` on the current target)
    resolves: the run got through (a replica's skip says nothing either way)."""
    outcome = execute(job, work, **options)
    if not (isinstance(outcome, Skipped) and outcome.result.get("skipped") == "replica"):
        alert_hooks.after_run(job, None, flow_run_id=current_flow_run_id())
    return outcome


def _infrastructure_alert(job: str, exc: BaseException) -> PgtenderError | None:
    """``as_pgtender_error``; an infrastructure error pages (once) for the current target."""
    known = as_pgtender_error(exc)
    if isinstance(known, InfrastructureError):
        alert_hooks.after_run(job, _one_line(known), flow_run_id=current_flow_run_id())
    return known


def _run_one(job: str, plan: Callable[[], sweep.Planned], log: Any) -> State[Any]:
    try:
        planned = plan()
        outcome = _execute_and_alert(
            job, planned.work, params=planned.params, day=planned.day, validate=planned.validate
        )
    except BaseException as exc:
        known = _infrastructure_alert(job, exc)
        if known is None:
            raise
        log.error(f"{job} failed", error=str(known), exit_code=known.exit_code)
        return error_state(known)
    if isinstance(outcome, ProblemsFound):
        log.warning(f"{job} found problems", message=outcome.message)
    elif isinstance(outcome, Skipped):
        log.info(f"{job} skipped", reason=outcome.reason)
    return to_state(outcome)


def done(result: dict[str, Any] | None = None, message: str = "") -> Done:
    return Done(result=dict(result or {}), message=message)


__all__ = [
    "Done",
    "LockLost",
    "Outcome",
    "Planned",
    "ProblemsFound",
    "Run",
    "Skipped",
    "Status",
    "checkpoint",
    "current_run",
    "execute",
    "run_flow",
    "to_state",
]
