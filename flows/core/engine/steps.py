"""A job's steps, and pgtender's one retry rule for them.

``@step("views-refresh")`` marks a function ``fn(run, *args)`` as a step of a job; calling it hands
it to the run's orchestrator: a Prefect task run (a served or worker flow run), or a plain call
(``PlainOrchestrator``, when no server runs). Either way, before a step starts the run checks it
still holds its lock (and was not asked to stop), and a lost connection is retried the same way.

One retry layer per kind of failure (docs/development.md):
- the connection was lost, the server shut down or was not reachable, no pooled connection came
  in time: the step is retried (``RETRY_DELAYS``, with jitter), each try on a fresh pooled connection;
- a lock conflict inside a DDL unit of work: ``flows.core.ddl.run_locked``, inside the transaction;
- never retried: bad input, ``QueryCanceled`` (statement_timeout), exhausted lock retries, row-count
  mismatches, findings, a lost advisory lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import psycopg
import structlog

from flows.core import db
from flows.core.errors import DatabaseUnavailable, InfrastructureError, PgtenderError

if TYPE_CHECKING:
    from flows.core.engine.context import Run

R = TypeVar("R")

# SQLSTATEs of a session that ended under us: admin shutdown, crash shutdown, cannot connect now.
_GONE = frozenset({"57P01", "57P02", "57P03"})

# Pauses before retries 1, 2, 3 (seconds; +-50 % jitter).
RETRY_DELAYS = (1.0, 4.0, 16.0)
JITTER = 0.5


def is_transient(exc: BaseException | None) -> bool:
    """Connection-level failures only: another try on a fresh connection may succeed."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        # sqlstate None: the connection broke mid-statement; class 08: connection exceptions.
        return state is None or state.startswith("08") or state in _GONE
    return False


@dataclass(frozen=True)
class Step(Generic[R]):
    """One step of a job: ``fn(run, *args)``; its name starts with the job's."""

    name: str
    fn: Callable[..., R]
    retries: int = 2
    task_run_name: str | None = None
    retry_on: Callable[[BaseException], bool] = is_transient
    delays: tuple[float, ...] = RETRY_DELAYS

    def __call__(self, run: Run, *args: Any, **kwargs: Any) -> R:
        result: R = run.orchestrator.call(self, run, *args, **kwargs)
        return result

    def each(
        self, run: Run, items: Sequence[str], *args: Any
    ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        """``fn(run, item, *args)`` for each item (a table), in ONE task run: results and failures
        by item (one failing never stops the others; a lost connection retries the items left).
        One task run for all items, not one each: a Prefect task run costs tens of milliseconds here."""
        return run.orchestrator.each(self, run, items, *args)

    def with_retries(self, retries: int, delay_seconds: float) -> Step[R]:
        return Step(self.name, self.fn, retries, self.task_run_name, self.retry_on, (delay_seconds,))

    def delay(self, attempt: int) -> float:
        base = self.delays[min(attempt, len(self.delays) - 1)]
        return base * (1 + random.uniform(-JITTER, JITTER))  # noqa: S311 - jitter, not security


def step(
    name: str,
    *,
    retries: int = 2,
    task_run_name: str | None = None,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> Callable[[Callable[..., R]], Step[R]]:
    """Decorate ``fn(run, *args)`` as a step (a task run under Prefect)."""

    def decorate(fn: Callable[..., R]) -> Step[R]:
        return Step(name, fn, retries, task_run_name, retry_on)

    return decorate


def as_known(exc: psycopg.Error) -> PgtenderError:
    """A database error as pgtender's own, one line: a lost connection stays transient."""
    line = " ".join(str(exc).split()) or type(exc).__name__
    refused = db.refused(exc)
    if refused is not None:
        return refused
    if is_transient(exc):
        return DatabaseUnavailable(f"database connection lost: {type(exc).__name__}: {line}")
    return InfrastructureError(f"database error: {type(exc).__name__}: {line}")


def guarded(step: Step[R], run: Run, *args: Any, **kwargs: Any) -> R:
    """The step's body as every orchestrator runs it: never start after the run lost its lock; a
    database error leaves it as pgtender's one-line error (no driver traceback in the run's logs)."""
    run.check_lock()
    try:
        return step.fn(run, *args, **kwargs)
    except psycopg.Error as exc:
        raise as_known(exc) from None


def with_retries(step: Step[R], run: Run, *args: Any, **kwargs: Any) -> R:
    """A plain call of the step, retried like a task run would be (``PlainOrchestrator``)."""
    attempt = 0
    while True:
        try:
            return guarded(step, run, *args, **kwargs)
        except Exception as exc:
            if attempt >= step.retries or not step.retry_on(exc):
                raise
            time.sleep(step.delay(attempt))
            attempt += 1


def each_item(
    step: Step[Any],
    run: Run,
    args: tuple[Any, ...],
    *,
    results: dict[str, Any],
    failures: dict[str, BaseException],
    pending: list[str],
) -> int:
    """One pass over the pending items: results and failures by item; a lost connection keeps its
    item pending and is raised after the others ran (the caller retries the pass)."""
    lost: list[BaseException] = []
    for item in list(pending):
        failures.pop(item, None)
        with structlog.contextvars.bound_contextvars(item=item):
            try:
                run.check_lock()
                results[item] = step.fn(run, item, *args)
            except Exception as exc:  # noqa: BLE001 - kept per item; the job reports the worst
                failures[item] = exc
                if is_transient(exc):
                    lost.append(exc)
                    continue
        pending.remove(item)
    if lost:
        first = lost[0]
        raise as_known(first) if isinstance(first, psycopg.Error) else first
    return len(results)


class PlainOrchestrator:
    """No Prefect: steps are plain calls (same retries), no artifacts, no flow run."""

    name = "plain"

    def flow_run_id(self) -> str | None:
        return None

    def call(self, step: Step[Any], run: Run, *args: Any, **kwargs: Any) -> Any:
        return with_retries(step, run, *args, **kwargs)

    def each(
        self, step: Step[Any], run: Run, items: Sequence[str], *args: Any
    ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        results: dict[str, Any] = {}
        failures: dict[str, BaseException] = {}
        pending = list(items)
        attempt = 0
        while pending:
            try:
                each_item(step, run, args, results=results, failures=failures, pending=pending)
            except Exception:  # noqa: BLE001 - a lost connection: the pending items again, or give up
                if attempt >= step.retries:
                    break
                time.sleep(step.delay(attempt))
                attempt += 1
        return results, failures

    def artifact(self, kind: str, **kwargs: Any) -> Any:
        return None

    def progress(self, artifact_id: Any, value: float) -> None:
        return None

    def ended_runs(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        return {}  # no Prefect API to ask: open rows are judged by their database session alone
