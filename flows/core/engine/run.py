"""The one run lifecycle every job goes through, whatever starts it (schedule, UI, CLI, backfill,
a worker on another machine):

    targets -> (each) session: replica? migrated? -> plan (bad input: rejected) -> advisory lock
    (job[, day]) -> ledger start -> the lock's fence -> work, step by step (each step checks the
    lock, each transaction the fence; counts written as steps commit) -> outcome -> ledger finish
    -> the after-run hook (alerts)

- Bad input (parameters, a target, a plan that refuses) changes nothing: a ``rejected`` ledger row
  when the target's ledger could be reached, none otherwise.
- On a hot standby the job does nothing and says so (pg_partman's idiom); a replica named for a job
  that writes is bad input.
- The lock is held by the run's own session (direct, never pooled), which also writes the ledger
  row: its pid is the run's proof of life, and a later run marks a dead run's row ``abandoned``.
  Another run holding the lock: this run is recorded as skipped and does nothing.
- Errors become the target's result (one line, no traceback): a target that fails never stops the
  others. A bug is logged with its traceback and reported as an infrastructure error.
- The fence (``flows.core.fence``): a run whose lock session ended while its work went on, and
  whose lock another run took, writes nothing more; the run taking over waits for (then cancels)
  its transaction in flight.
- SIGTERM / Ctrl-C: the run stops at its next step, its row says ``interrupted`` with its counts.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import structlog

from flows.core import db, ledger, locks, markdown, migrations
from flows.core.db import load_sql
from flows.core.engine.context import Finished, Run, RunContext
from flows.core.engine.outcomes import Outcome, ProblemsFound, Skipped, Status
from flows.core.engine.report import RunReport, TargetResult
from flows.core.engine.spec import JobSpec, LockScope, Params, Plan, Planning
from flows.core.engine.verdicts import LEDGER, kind_of, one_line
from flows.core.errors import (
    ConfigError,
    DatabaseUnavailable,
    DataProblem,
    InfrastructureError,
    Interrupted,
    LockLost,
    PgtenderError,
)
from flows.core.fleet import targets
from flows.core.fleet.targets import Target
from flows.core.logs import get_logger

Conn = psycopg.Connection[tuple[Any, ...]]


def run(spec: JobSpec[Any], params: Params, targets: list[Target], ctx: RunContext) -> RunReport:
    """``spec`` over ``targets`` (each its whole lifecycle; at most ``[fleet] concurrency`` at once)."""
    log = get_logger(job=spec.name)
    fleet = any(t.configured for t in targets) and not any(t.explicit for t in targets)
    if len(targets) == 1:
        results = [run_target(spec, params, targets[0], ctx)]
    else:
        workers = min(ctx.policy.fleet.concurrency, len(targets))
        # each thread runs in a copy of this context: the flow run (its tasks attach to it), log fields
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=spec.name) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, run_target, spec, params, t, ctx, swept=True)
                for t in targets
            ]
            results = [f.result() for f in futures]
    report = RunReport(job=spec.name, results=results, fleet=fleet)
    if fleet:
        ctx.orchestrator.artifact(  # names and messages escaped: shown as written
            "table",
            table=markdown.rows(r.row() for r in results),
            key=f"fleet-{spec.name}",
            description=markdown.text(report.summary()),
        )
    if spec.after is not None:
        report = spec.after(report, params, ctx.policy, ctx)
    verdict = report.verdict
    log.info(f"{spec.name} {verdict.kind}", line=verdict.line, exit_code=verdict.exit_code)
    return report


def start(spec: JobSpec[Any], values: Mapping[str, Any], ctx: RunContext) -> RunReport:
    """Every path's entry: the parameters (``target`` among them) validated and the targets resolved
    before anything is touched — bad input there is the report's error — then ``run``."""
    values = dict(values)
    target = values.pop("target", None) or None
    chosen: list[Target] = []
    try:
        params = spec.parse(values)
        chosen = targets.select(target, ctx.settings, ctx.policy, embedded=ctx.embedded)
        if ctx.check is not None:
            for t in chosen:
                ctx.check(t.policy)
        if spec.check is not None:
            spec.check(ctx.policy, params)
    except PgtenderError as exc:
        if chosen and isinstance(exc, ConfigError):  # the request itself refused: kept as rejected
            for t in chosen:
                _reject_quietly(spec, params, t, ctx, exc)
        report = RunReport(job=spec.name, results=[], error=exc)
        get_logger(job=spec.name).info(f"{spec.name} {report.verdict.kind}", line=report.verdict.line)
        return report
    return run(spec, params, chosen, ctx)


def _reject_quietly(
    spec: JobSpec[Any], params: Params, target: Target, ctx: RunContext, exc: ConfigError
) -> None:
    """A request refused before any target's work: its `rejected` row in the target's ledger (the
    weekly report counts it), when the ledger can be reached; otherwise nothing (still bad input)."""
    try:
        with session(target, ctx) as conn:
            row = conn.execute(load_sql("queries/engine/readiness.sql")).fetchone()
            if row is None or row[0] or not row[1]:  # a replica, or no ledger here
                return
            _record_rejected(conn, spec, params, ctx, exc)
    except (PgtenderError, psycopg.Error):
        return


def run_target(
    spec: JobSpec[Any], params: Params, target: Target, ctx: RunContext, *, swept: bool = False
) -> TargetResult:
    """One target's lifecycle; its errors become its result (the other targets go on). A sweep's
    target (``swept``) then closes its pool: connections to the targets in flight, not to all N."""
    log = get_logger(job=spec.name, target=target.name)
    found: list[ledger.Abandoned] = []
    replica = False
    try:
        with structlog.contextvars.bound_contextvars(target=target.name):
            try:
                result, found, replica = _on_target(spec, params, target, ctx)
            except PgtenderError as exc:
                result = TargetResult(target=target.name, error=exc)
            except psycopg.Error as exc:
                error = db.refused(exc) or InfrastructureError(
                    f"database error: {type(exc).__name__}: {one_line(str(exc))}"
                )
                result = TargetResult(target=target.name, error=error)
            except Exception as exc:
                log.exception("unexpected error")
                error = InfrastructureError(f"unexpected {type(exc).__name__}: {one_line(str(exc))}")
                result = TargetResult(target=target.name, error=error)
            if ctx.after is not None and not replica:
                ctx.after(
                    Finished(
                        job=spec.name,
                        target=target,
                        result=result,
                        state_dir=target.state_dir(ctx.state_dir),
                        abandoned=found,
                        flow_run_id=ctx.orchestrator.flow_run_id(),
                    )
                )
    finally:  # a sweep's target: its pool closed even when its end raised
        if swept:
            db.release(target.dsn)
    return result


@contextmanager
def session(target: Target, ctx: RunContext) -> Iterator[Conn]:
    """The run's own session: a direct connection (never pooled)."""
    with db.connect(
        target.dsn,
        policy=target.policy.database,
        application_name=f"{ctx.application_name}-lock",
        autocommit=True,
        name=target.name,
    ) as conn:
        yield conn


def _on_target(
    spec: JobSpec[Any], params: Params, target: Target, ctx: RunContext
) -> tuple[TargetResult, list[ledger.Abandoned], bool]:
    with session(target, ctx) as conn:
        row = conn.execute(load_sql("queries/engine/readiness.sql")).fetchone()
        assert row is not None
        replica, has_schema, now = row
        if replica:
            if target.explicit and target.configured and spec.writes:
                raise ConfigError(
                    f"target {target.name!r} is a replica (hot standby): {spec.name} writes; name its primary"
                )
            reason = f"this server is a replica (hot standby): {spec.name} does nothing here"
            return TargetResult(target=target.name, outcome=Skipped(reason=reason)), [], True
        _require_schema(conn, target, has_schema)
        planning = Planning(
            conn=conn,
            target=target,
            policy=target.policy,
            file_policy=ctx.policy,
            now=now,
            registry=ctx.registry,
        )
        try:
            plan = spec.plan(planning, params)
        except ConfigError as exc:
            _record_rejected(conn, spec, params, ctx, exc)
            raise
        day = plan.day if spec.lock is LockScope.DAY else None
        names = [locks.lock_name(spec.name, day)]
        got = locks.try_locks(conn, names)
        if not all(got):
            locks.unlock(conn, [n for n, g in zip(names, got, strict=True) if g])
            return _skipped(conn, spec, plan, ctx, day=day, target=target), [], False
        try:
            return _locked(spec, params, plan, target=target, ctx=ctx, conn=conn, names=names)
        finally:
            if not conn.closed:
                with suppress(psycopg.OperationalError):  # the session is gone, and its locks with it
                    locks.unlock(conn, names)


def _require_schema(conn: Conn, target: Target, has_schema: bool) -> None:
    """A database pgtender has not migrated (or not to this version): bad input, one line."""
    newest = migrations.newest_version()
    current = 0
    if has_schema:
        found = conn.execute(load_sql("queries/engine/schema_version.sql")).fetchone()
        current = int(found[0]) if found else 0
    if current < newest:
        raise ConfigError(
            f"target {target.name!r} is at schema version {current} of {newest}: run pgtender migrate"
        )


def _record_rejected(
    conn: Conn, spec: JobSpec[Any], params: Params, ctx: RunContext, exc: ConfigError
) -> None:
    op = ledger.start_operation(
        conn, spec.name, params=params.model_dump(mode="json"), flow_run_id=ctx.orchestrator.flow_run_id()
    )
    ledger.finish_operation(conn, op.operation_id, Status.REJECTED, {}, str(exc))


def _skipped(
    conn: Conn, spec: JobSpec[Any], plan: Plan, ctx: RunContext, *, day: object, target: Target
) -> TargetResult:
    what = f"{spec.name} for {day}" if day is not None else spec.name
    reason = f"another {what} run holds the advisory lock: this run did nothing"
    op = ledger.start_operation(
        conn, spec.name, params=dict(plan.params), flow_run_id=ctx.orchestrator.flow_run_id()
    )
    ledger.finish_operation(conn, op.operation_id, Status.SKIPPED, {}, reason)
    get_logger(job=spec.name).warning("skipped", reason=reason)
    return TargetResult(target=target.name, outcome=Skipped(reason=reason), operation_id=op.operation_id)


def _locked(
    spec: JobSpec[Any],
    params: Params,
    plan: Plan,
    *,
    target: Target,
    ctx: RunContext,
    conn: Conn,
    names: list[str],
) -> tuple[TargetResult, list[ledger.Abandoned], bool]:
    """The run under its lock: the ledger row, the work, the row finished however the work ends."""
    flow_run_id = ctx.orchestrator.flow_run_id()
    op = ledger.start_operation(conn, spec.name, params=dict(plan.params), flow_run_id=flow_run_id)
    found = op.abandoned + _ended_flow_runs(conn, spec.name, op.operation_id, ctx)
    for gone in found:
        get_logger(job=spec.name).warning(
            "an earlier run was abandoned",
            abandoned_operation_id=str(gone.operation_id),
            started_at=gone.started_at.isoformat(),
            reason=gone.reason,
        )
    run = Run(
        spec=spec,
        params=params,
        target=target,
        context=ctx,
        session=conn,
        lock_names=names,
        operation_id=op.operation_id,
        started_at=op.started_at,
        abandoned=found,
    )
    with structlog.contextvars.bound_contextvars(
        job=spec.name, flow_run_id=flow_run_id, operation_id=str(op.operation_id)
    ):
        outcome = _work(run, plan, conn, ctx)
    message = outcome.message if isinstance(outcome, ProblemsFound | Skipped) else None
    _finish(run, conn, LEDGER[outcome.kind], message)
    return (
        TargetResult(target=target.name, outcome=outcome, operation_id=op.operation_id, counts=run.counts),
        found,
        False,
    )


def _work(run: Run, plan: Plan, conn: Conn, ctx: RunContext) -> Outcome:
    """The job's work behind its fence; a failure finishes the ledger row and is raised as the
    error that says why (a lost lock over what it caused)."""
    try:
        run.take_fence()
        outcome: Outcome = plan.work(run)
        run.check_lock()
    except DataProblem as exc:  # raised deep inside (a count that did not add up)
        return ProblemsFound(findings=[one_line(str(exc))], summary=f"{run.spec.name} stopped on a problem")
    except BaseException as exc:
        error = _failed(run, conn, ctx, exc)
        if error is exc:
            raise
        raise error from None
    finally:
        with suppress(psycopg.Error):  # the session is gone: its fences stay, fenced off
            run.release_fence()
    return outcome


def _failed(run: Run, conn: Conn, ctx: RunContext, exc: BaseException) -> BaseException:
    """Finish the ledger row of a run whose work raised ``exc``; returns what to raise."""
    if isinstance(exc, LockLost):
        _finish(run, conn, LEDGER[kind_of(exc)], str(exc))
        return exc
    if isinstance(exc, Interrupted):
        if ctx.stop.is_set():  # the line says what the whole run did (the steps' errors: per step)
            exc = Interrupted(
                f"{run.spec.name} stopped at a safe point on SIGTERM; done: {run.done_so_far()}"
            )
        _finish(run, conn, Status.INTERRUPTED, str(exc))
        return exc
    if isinstance(exc, PgtenderError):
        # a statement the run taking over cancelled, a session ended: the lost lock says why
        # (a database that cannot be reached says so itself)
        lost = None if isinstance(exc, DatabaseUnavailable) else run.lost_lock()
        _finish(run, conn, LEDGER[kind_of(lost or exc)], str(lost or exc))
        return lost or exc
    if isinstance(exc, psycopg.Error):
        error = (
            run.lost_lock()
            or db.refused(exc)
            or InfrastructureError(f"database error: {type(exc).__name__}: {one_line(str(exc))}")
        )
        _finish(run, conn, LEDGER[kind_of(error)], str(error))
        return error
    interrupted = isinstance(exc, KeyboardInterrupt | SystemExit) or type(exc).__name__ == "TerminationSignal"
    _finish(
        run,
        conn,
        Status.INTERRUPTED if interrupted else Status.FAILED,
        f"{type(exc).__name__}: {one_line(str(exc))}",
    )
    return exc


def _finish(run: Run, conn: Conn, status: Status, error: str | None) -> None:
    """Finish the ledger row on the run's session, or (when that session is gone) a new connection."""
    try:
        if conn.closed:
            raise psycopg.OperationalError("the run's session is closed")
        ledger.finish_operation(conn, run.operation_id, status, run.counts, error)
    except psycopg.Error:
        try:
            with run.connection() as other:
                ledger.finish_operation(other, run.operation_id, status, run.counts, error)
        except (psycopg.Error, PgtenderError) as exc:  # the database may be what failed
            get_logger(job=run.job).error(
                "could not record the run's end in the ledger", error=one_line(str(exc))
            )


def _ended_flow_runs(conn: Conn, job: str, found_by: Any, ctx: RunContext) -> list[ledger.Abandoned]:
    """Open rows of ``job`` whose flow run the orchestrator knows has ended (Crashed, Cancelled...)
    without finishing them are abandoned; rows of runs it does not know are judged by their session."""
    candidates = ledger.open_runs(conn, job, found_by=found_by)
    if not candidates:
        return []
    ended = ctx.orchestrator.ended_runs([str(flow_run_id) for _, flow_run_id in candidates])
    found: list[ledger.Abandoned] = []
    for operation_id, flow_run_id in candidates:
        state = ended.get(str(flow_run_id))
        if state is None:
            continue
        reason = (
            f"abandoned: its flow run {flow_run_id} ended {state} without finishing the run;"
            f" found by the next {job} run (operation {found_by})"
        )
        gone = ledger.abandon(conn, operation_id, reason)
        if gone is not None:
            found.append(gone)
    return found


__all__ = ["run", "run_target", "session", "start"]
