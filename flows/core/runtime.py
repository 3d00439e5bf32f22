"""What tasks need at run time: a pooled connection and pgtender's one retry rule.

One retry layer per kind of failure (docs/development.md):
- the connection was lost, the server shut down or was not reachable, no pooled connection came
  in time: **Prefect task retries** (``db_task``), each try on a fresh pooled connection, with
  exponential backoff and jitter. Nothing else retries these.
- a lock conflict (``lock_not_available``, deadlock, serialization failure) inside a DDL unit of
  work: ``flows.core.ddl.run_locked``, inside the transaction, with backoff and jitter. When its
  tries are exhausted (``LockRetriesExhausted``) that is final.
- never retried: bad input and configuration, ``QueryCanceled`` (statement_timeout), exhausted
  lock retries, row-count mismatches, findings. No flow-level retries.

Nothing here runs at import; each call reads settings from the environment of the run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import psycopg

from flows.core import db, lifecycle, settings
from flows.core.errors import DatabaseUnavailable
from flows.core.plain import PlainAware

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

P = ParamSpec("P")
R = TypeVar("R")

Conn = psycopg.Connection[tuple[Any, ...]]

TELEMETRY_OFF = {
    # Nothing phones home: this machine (and many production hosts) has no internet.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}

# SQLSTATEs of a session that ended under us: admin shutdown, crash shutdown, cannot connect now.
_GONE = frozenset({"57P01", "57P02", "57P03"})

# Pauses before task retries 1, 2, 3 (seconds; Prefect adds up to +-50 % jitter).
RETRY_DELAYS = (1.0, 4.0, 16.0)


def disable_telemetry() -> None:
    """Set pgtender's defaults for Prefect/GX telemetry (explicit environment values win)."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def is_transient(exc: BaseException | None) -> bool:
    """Connection-level failures only: another try on a fresh connection may succeed."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        # sqlstate None: the connection broke mid-statement; class 08: connection exceptions.
        return state is None or state.startswith("08") or state in _GONE
    return False


def retry_transient_only(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry lost connections, nothing else."""
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
    """pgtender's ``@task``: stops when the run lost its lock, retries lost connections only.

    No task tags: Prefect looks up a tag concurrency limit for every tag of every task run, which
    measured 0.08-0.15 s a task run here (30 tagged runs 3.5-5.5 s, untagged 1.2 s) — 50 tables
    would pay seconds for nothing. The job shows in the task name (``<job>-...``), and the
    deployments tag their flow runs (``pgtender``, the job), which is what the UI filters on.
    """
    from prefect import task  # noqa: PLC0415 - keep the core importable without Prefect's weight

    if not name.startswith(f"{job}-"):
        raise ValueError(f"task name {name!r} must start with its job {job!r}")

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        @functools.wraps(fn)
        def step(*args: P.args, **kwargs: P.kwargs) -> R:
            lifecycle.checkpoint()  # never start a step after the run lost its lock
            return fn(*args, **kwargs)

        made = task(
            name=name,
            retries=retries,
            retry_delay_seconds=list(RETRY_DELAYS[: max(retries, 1)]),
            retry_jitter_factor=0.5,
            retry_condition_fn=retry_transient_only,
            task_run_name=task_run_name,
        )(step)
        return plain_aware(made, retries=retries)

    return decorate


def plain_aware(
    task: Task[P, R], *, retries: int, retry_on: Callable[[BaseException], bool] | None = None
) -> Task[P, R]:
    """The task, or a plain call of it in plain mode (``flows.core.plain``: no Prefect run)."""
    return cast("Task[P, R]", PlainAware(task, retries, RETRY_DELAYS, retry_on))


def run_each(
    step: Task[..., Any], job: str, items: list[str], *args: Any, retries: int
) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """``step(item, *args)`` for each item (a table), one after another, inside ONE task run: the
    results by item, and the failures by item (one item failing never stops the others).

    One task run for all items, not one each: a Prefect task run costs tens of milliseconds here
    (50 tables paid ~2 s of bookkeeping for a few ms of SQL). Retries keep their one layer: an item
    that lost its connection fails the task run after the others ran, and Prefect's retry of the
    task runs only the items still pending; when no retry is left they are reported as failed."""
    import structlog  # noqa: PLC0415
    from prefect import task  # noqa: PLC0415

    fn: Callable[..., Any] = step.fn
    results: dict[str, Any] = {}
    failures: dict[str, BaseException] = {}
    pending = list(items)

    def each() -> int:
        lost: list[BaseException] = []
        for item in list(pending):
            failures.pop(item, None)
            with structlog.contextvars.bound_contextvars(item=item):
                try:
                    results[item] = fn(item, *args)
                except Exception as exc:  # noqa: BLE001 - kept per item; the job reports the worst
                    failures[item] = exc
                    if not is_transient(exc):
                        pending.remove(item)
                    else:
                        lost.append(exc)
                    continue
            pending.remove(item)
        if lost:  # Prefect retries the task run: only the items that lost their connection again
            raise lost[0]
        return len(results)

    if items:
        made = task(
            name=f"{job}-each",
            retries=retries,
            retry_delay_seconds=list(RETRY_DELAYS[: max(retries, 1)]),
            retry_jitter_factor=0.5,
            retry_condition_fn=retry_transient_only,
        )(each)
        plain_aware(made, retries=retries)(return_state=True)  # plain mode: a plain call, same retries
    return results, failures


# An autocommit connection to the tended database, from the process pool.
connection = lifecycle.connection


def check_database() -> None:
    """Connect once, directly: ConfigError (exit 2) for a wrong password, an unknown database or a
    bad option; DatabaseUnavailable (exit 3) when the server cannot be reached."""
    current = settings.load_settings()
    policy = settings.current_policy(current)
    db.connect(
        settings.dsn(current), policy=policy.database, application_name=current.application_name
    ).close()


def current_flow_run_id() -> str | None:
    return lifecycle.current_flow_run_id()
