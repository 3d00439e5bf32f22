"""One run of a job over the fleet: every target (or the one named), bounded concurrency, one flow run.

Each target runs the whole lifecycle on its own (``lifecycle.execute``: replica check, advisory
lock, ledger row, the job's work, results) in a worker thread of this flow run, with its own
connections (``target_context`` makes ``settings.dsn()`` and the policy the target's). A target
that is down, fails or finds problems never stops the others. The run's final state and the
``fleet-<job>`` artifact list every target's outcome (done / skipped / problems / bad input /
error); the exit code is the worst of them (0 done or skipped, 1 problems, 2 bad input, 3 error).

Not one task or flow run per target: a Prefect flow run costs about a second here, a task run
tens of milliseconds; the sweep costs a thread.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from flows.core import markdown, plain
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.errors import ProblemsFound as ProblemsError
from flows.core.logs import get_logger
from flows.core.outcomes import (
    BAD_INPUT_STATE,
    INFRASTRUCTURE_STATE,
    PROBLEMS_STATE,
    SKIPPED_STATE,
    Done,
    Outcome,
    ProblemsFound,
    Skipped,
)
from flows.core.target_context import Target, using

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


@dataclass(frozen=True, kw_only=True)
class Planned:
    """What one target's run does: computed inside the target (its clock, its policy)."""

    work: Callable[..., Outcome]
    params: dict[str, Any] = field(default_factory=dict)
    day: object | None = None
    validate: Callable[[], None] | None = None


@dataclass(frozen=True, kw_only=True)
class TargetOutcome:
    """How one target's run ended: an outcome, or an error (never both)."""

    target: str
    outcome: Outcome | None = None
    error: PgtenderError | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "bad input" if isinstance(self.error, ConfigError) else "error"
        if isinstance(self.outcome, ProblemsFound):
            return "problems"
        if isinstance(self.outcome, Skipped):
            return "skipped"
        return "done"

    @property
    def exit_code(self) -> int:
        return {"done": 0, "skipped": 0, "problems": 1, "bad input": 2, "error": 3}[self.status]

    @property
    def message(self) -> str:
        if self.error is not None:
            return str(self.error)
        assert self.outcome is not None
        return self.outcome.message

    def row(self) -> dict[str, Any]:
        return {"target": self.target, "outcome": self.status, "message": self.message}


RunOne = Callable[[str], Outcome]  # one target's whole run, inside its context: job -> outcome


def run_target(job: str, target: Target, run_one: RunOne, as_error: Callable[..., Any]) -> TargetOutcome:
    """One target's lifecycle; its errors are caught and kept (the other targets go on)."""
    with using(target), structlog.contextvars.bound_contextvars(target=target.name):
        try:
            outcome = run_one(job)
        except Exception as exc:  # noqa: BLE001 - one target's failure must never stop the others
            known = as_error(exc)
            if known is None:  # a bug: its traceback in the log, the other targets go on
                get_logger(job=job).exception("unexpected error", target=target.name)
                known = InfrastructureError(f"unexpected {type(exc).__name__}: {exc}")
            get_logger(job=job).error(f"{job} failed", target=target.name, error=str(known))
            return TargetOutcome(target=target.name, error=known)
    return TargetOutcome(target=target.name, outcome=outcome)


def sweep(
    job: str, targets: list[Target], run_one: RunOne, *, concurrency: int, as_error: Callable[..., Any]
) -> list[TargetOutcome]:
    """Every target through ``run_one``, at most ``concurrency`` at once, in the targets' order."""
    if len(targets) == 1:
        return [run_target(job, targets[0], run_one, as_error)]
    # Each thread gets a copy of this context: the flow run (so tasks attach to it), the log fields.
    with ThreadPoolExecutor(max_workers=min(concurrency, len(targets)), thread_name_prefix=job) as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, run_target, job, t, run_one, as_error)
            for t in targets
        ]
        return [f.result() for f in futures]


def worst(results: list[TargetOutcome]) -> int:
    return max((r.exit_code for r in results), default=0)


def summary(job: str, results: list[TargetOutcome]) -> str:
    """One line: each target's outcome (the failing ones with their message)."""
    parts = []
    for r in results:
        detail = f" ({r.message})" if r.status not in ("done",) and r.message else ""
        parts.append(f"{r.target}: {r.status}{detail}")
    return f"{job} over {len(results)} target(s): " + "; ".join(parts)


def result_data(results: list[TargetOutcome]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for r in results:
        entry: dict[str, Any] = {"outcome": r.status, "message": r.message}
        if r.outcome is not None:
            entry["result"] = r.outcome.result
        data[r.target] = entry
    return {"targets": data}


def combined(job: str, results: list[TargetOutcome]) -> Outcome | None:
    """The fleet's outcome for ``lifecycle.last_outcome`` (None when a target ended in an error)."""
    code = worst(results)
    line = summary(job, results)
    if code >= 2:
        return None
    if code == 1:
        findings = [f"{r.target}: {r.message}" for r in results if r.status == "problems"]
        return ProblemsFound(findings=findings, summary=line, result=result_data(results))
    if results and all(r.status == "skipped" for r in results):
        return Skipped(reason=line, result=result_data(results))
    return Done(result=result_data(results), message=line)


def final_state(job: str, results: list[TargetOutcome]) -> State[Any]:
    """The flow run's state for a sweep of several targets: the worst target decides."""
    from prefect.states import Completed, Failed  # noqa: PLC0415

    code = worst(results)
    line = summary(job, results)
    data = result_data(results)
    if code == 3:
        return Failed(name=INFRASTRUCTURE_STATE, message=line, data=InfrastructureError(line))
    if code == 2:
        return Failed(name=BAD_INPUT_STATE, message=line, data=ConfigError(line))
    if code == 1:
        return Failed(name=PROBLEMS_STATE, message=line, data=ProblemsError(line))
    if results and all(r.status == "skipped" for r in results):
        return Completed(name=SKIPPED_STATE, message=line, data=data)
    return Completed(message=line, data=data)


def publish(job: str, results: list[TargetOutcome]) -> None:
    """The ``fleet-<job>`` table artifact: one row per target (no URL, only names and outcomes)."""
    from prefect.exceptions import PrefectException  # noqa: PLC0415

    try:
        plain.artifact(  # nothing in plain mode (no Prefect run to attach it to)
            "table",
            table=markdown.rows(r.row() for r in results),  # messages escaped: shown as written
            key=f"fleet-{job}",
            description=markdown.text(summary(job, results)),
        )
    except (PrefectException, OSError) as exc:  # the targets' outcomes are recorded in their ledgers
        get_logger(job=job).warning("fleet artifact not written", error=str(exc))
