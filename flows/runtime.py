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


def skip_run(conn: Conn, job: str, reason: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a run that did nothing (another run holds the job's lock) and say why."""
    from flows.logs import get_logger  # noqa: PLC0415

    op = ledger.start_operation(conn, job, params=params, flow_run_id=current_flow_run_id())
    ledger.skip_operation(conn, op.operation_id, reason)
    get_logger(job=job).warning("skipped", reason=reason)
    return {"operation_id": str(op.operation_id), "skipped": True, "reason": reason}


@contextmanager
def ledger_entry(job: str, params: dict[str, Any] | None = None) -> Iterator[ledger.Operation]:
    """Start a ledger row for this flow run; complete it, or fail it and re-raise."""
    run_id = current_flow_run_id()
    with connection() as conn:
        op = ledger.start_operation(conn, job, params=params, flow_run_id=run_id)
    try:
        # Every log line of the run carries its job, flow run and ledger operation.
        with structlog.contextvars.bound_contextvars(
            job=job, flow_run_id=run_id, operation_id=str(op.operation_id)
        ):
            yield op
    except BaseException as exc:
        with connection() as conn:
            ledger.fail_operation(conn, op.operation_id, f"{type(exc).__name__}: {exc}", op.counts)
        raise
    with connection() as conn:
        ledger.complete_operation(conn, op.operation_id, op.counts)
