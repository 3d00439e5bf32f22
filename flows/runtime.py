"""What every flow needs at run time: the database connection, the ledger entry, retry rules.

Nothing here runs at import; each call reads settings from the environment of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import psycopg
import psycopg.errors
import structlog

from flows import db, ledger, settings
from flows.errors import InfrastructureError

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

P = ParamSpec("P")
R = TypeVar("R")

Conn = psycopg.Connection[tuple[Any, ...]]

# Errors worth another try: the server went away, a lock or serialization conflict.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection lost, admin shutdown, LockNotAvailable, QueryCanceled ...
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    InfrastructureError,
)

TELEMETRY_OFF = {
    # Nothing phones home: this machine (and many production hosts) has no internet.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def disable_telemetry() -> None:
    """Set pgtender's defaults for Prefect/GX telemetry (explicit environment values win)."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def is_transient(exc: BaseException | None) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def retry_transient_only(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry lost connections and lock conflicts, nothing else."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            result = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - an unreadable result is not a reason to retry
            return False
        exc = result if isinstance(result, BaseException) else None
    return is_transient(exc)


def db_task(
    name: str, job: str, *, retries: int = 2, task_run_name: str | None = None
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """pgtender's ``@task``: retries (with backoff and jitter) on transient database errors only.

    No task tags: Prefect looks up a tag concurrency limit for every tag of every task run, which
    measured 0.08-0.15 s a task run here (30 tagged runs 3.5-5.5 s, untagged 1.2 s) — 50 tables
    would pay seconds for nothing. The job shows in the task name (``<job>-...``), and the
    deployments tag their flow runs (``pgtender``, the job), which is what the UI filters on.
    """
    from prefect import task  # noqa: PLC0415 - keep the core importable without Prefect's weight

    if not name.startswith(f"{job}-"):
        raise ValueError(f"task name {name!r} must start with its job {job!r}")
    return task(
        name=name,
        retries=retries,
        retry_delay_seconds=[2.0, 10.0, 30.0][: max(retries, 1)],
        retry_jitter_factor=0.5,
        retry_condition_fn=retry_transient_only,
        task_run_name=task_run_name,
    )


def current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run  # noqa: PLC0415 - runtime context, read at call time

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


def check_database() -> None:
    """Connect once, directly: ConfigError (exit 2) for a wrong password, an unknown database or a
    bad option; InfrastructureError (exit 3) when the server cannot be reached."""
    current = settings.load_settings()
    policy = settings.current_policy(current)
    db.connect(
        settings.dsn(current), policy=policy.database, application_name=current.application_name
    ).close()


def replica_skip(job: str, conn: Conn | None = None) -> dict[str, Any] | None:
    """pg_partman's idiom: on a replica (hot standby) a job does nothing, and says so, instead of
    failing on its first write. None on a primary. Borrows a connection unless given one."""
    if conn is None:
        with connection() as borrowed:
            return replica_skip(job, borrowed)
    if not db.is_replica(conn):
        return None
    from flows.logs import get_logger  # noqa: PLC0415

    get_logger(job=job).info(f"this server is a replica: {job} does nothing here")
    return {"skipped": "replica"}


def _report_abandoned(job: str, found: list[ledger.Abandoned]) -> None:
    from flows.logs import get_logger  # noqa: PLC0415

    log = get_logger(job=job)
    for gone in found:
        log.warning(
            "an earlier run was abandoned",
            abandoned_operation_id=str(gone.operation_id),
            started_at=gone.started_at.isoformat(),
            found_at=gone.found_at.isoformat(),
            reason=gone.reason,
        )


def abandon_ended_flow_runs(conn: Conn, job: str, *, found_by: Any) -> list[ledger.Abandoned]:
    """Open ledger rows of ``job`` whose Prefect flow run has ended (Completed, Failed, Crashed,
    Cancelled ...) without finishing them are abandoned. A flow run this Prefect API does not know
    proves nothing (``pgtender run`` without PREFECT_API_URL uses a temporary server of its own):
    such a row is judged by its database session alone. An unreachable API leaves rows as they are.
    """
    candidates = ledger.open_runs(conn, job, found_by=found_by)
    if not candidates:
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
        from flows.logs import get_logger  # noqa: PLC0415

        get_logger(job=job).warning(
            "Prefect API unavailable: open runs judged by their session only", error=str(exc)
        )
    return found


def skip_run(conn: Conn, job: str, reason: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a run that did nothing (another run holds the job's lock) and say why."""
    from flows.logs import get_logger  # noqa: PLC0415

    op = ledger.start_operation(conn, job, params=params, flow_run_id=current_flow_run_id())
    _report_abandoned(job, op.abandoned)
    ledger.skip_operation(conn, op.operation_id, reason)
    get_logger(job=job).warning("skipped", reason=reason)
    return {"operation_id": str(op.operation_id), "skipped": True, "reason": reason}


def _finish(conn: Conn, write: Callable[[Conn], None]) -> None:
    """Write the ledger finish on the run's own session, or on a fresh one if that was lost."""
    try:
        if not conn.closed:
            write(conn)
            return
    except psycopg.OperationalError:
        pass  # the session died under the run (outage, pg_terminate_backend): use another
    with connection() as fresh:
        write(fresh)


@contextmanager
def ledger_entry(job: str, params: dict[str, Any] | None = None) -> Iterator[ledger.Operation]:
    """Start a ledger row for this flow run; complete it, or fail it and re-raise.

    The connection that starts the row is held until the row is finished: the ledger judges a run
    alive by that session, and the next run of the job marks the row abandoned once it is gone.
    """
    run_id = current_flow_run_id()
    with connection() as conn:
        op = ledger.start_operation(conn, job, params=params, flow_run_id=run_id)
        op.abandoned += abandon_ended_flow_runs(conn, job, found_by=op.operation_id)
        _report_abandoned(job, op.abandoned)
        try:
            # Every log line of the run carries its job, flow run and ledger operation.
            with structlog.contextvars.bound_contextvars(
                job=job, flow_run_id=run_id, operation_id=str(op.operation_id)
            ):
                yield op
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
            _finish(conn, lambda c: ledger.fail_operation(c, op.operation_id, message, op.counts))
            raise
        _finish(conn, lambda c: ledger.complete_operation(c, op.operation_id, op.counts))
