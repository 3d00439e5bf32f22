"""The one mapping from how a run ended (a ``Kind`` and one line) to everything outside it:

    kind            ledger status   Prefect state (name: message)             exit code
    done            completed       Completed: <line>                           0
    skipped         skipped         Completed: "Skipped: <line>"                0
    problems found  problems        Failed: "Problems found: <line>"            1
    bad input       rejected        Failed: "Bad input: <line>"                 2
    infrastructure  failed          Failed: "Infrastructure error: <line>"      3
    interrupted     interrupted     Cancelled: "Interrupted: <line>"            143

Prefect's own state names only: the UI's run lists (a deployment's Runs tab) ask the API for runs
by those names, so a run named "Problems found" would never show there. What kind of failure it was
is the message's first words, and ``from_state`` reads it back (a run that went through a server
ends the same way as one that ran here). A Crashed run (its process died) is an infrastructure error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows.core.engine.outcomes import Kind, Status
from flows.core.errors import ConfigError, DataProblem, Interrupted, PgtenderError
from flows.core.masking import mask_secrets

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

EXIT_CODES: dict[Kind, int] = {
    Kind.DONE: 0,
    Kind.SKIPPED: 0,
    Kind.PROBLEMS: 1,
    Kind.BAD_INPUT: 2,
    Kind.INFRASTRUCTURE: 3,
    Kind.INTERRUPTED: Interrupted.exit_code,
}

LEDGER: dict[Kind, Status] = {
    Kind.DONE: Status.COMPLETED,
    Kind.SKIPPED: Status.SKIPPED,
    Kind.PROBLEMS: Status.PROBLEMS,
    Kind.BAD_INPUT: Status.REJECTED,
    Kind.INFRASTRUCTURE: Status.FAILED,
    Kind.INTERRUPTED: Status.INTERRUPTED,
}

# The first words of a state message: how a Failed / Completed / Cancelled run ended.
PREFIXES: dict[Kind, str] = {
    Kind.SKIPPED: "Skipped",
    Kind.PROBLEMS: "Problems found",
    Kind.BAD_INPUT: "Bad input",
    Kind.INFRASTRUCTURE: "Infrastructure error",
    Kind.INTERRUPTED: "Interrupted",
}

# Worst first: a sweep over several targets ends as its worst target.
SEVERITY: tuple[Kind, ...] = (
    Kind.INTERRUPTED,
    Kind.INFRASTRUCTURE,
    Kind.BAD_INPUT,
    Kind.PROBLEMS,
    Kind.DONE,
    Kind.SKIPPED,
)


def one_line(text: str) -> str:
    return mask_secrets(" ".join(text.split()))


@dataclass(frozen=True)
class Verdict:
    """How a run ended: its kind and one line that says what happened (no secrets, no newlines)."""

    kind: Kind
    line: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    @property
    def ledger_status(self) -> Status:
        return LEDGER[self.kind]

    def text(self, job: str) -> str:
        """What a terminal shows: ``health: problems found: 2 health check(s) failed: ...``."""
        return f"{job}: {self.kind}" + (f": {self.line}" if self.line else "")


def kind_of(exc: PgtenderError) -> Kind:
    if isinstance(exc, ConfigError):
        return Kind.BAD_INPUT
    if isinstance(exc, DataProblem):
        return Kind.PROBLEMS
    if isinstance(exc, Interrupted):
        return Kind.INTERRUPTED
    return Kind.INFRASTRUCTURE


def of_error(exc: PgtenderError) -> Verdict:
    return Verdict(kind_of(exc), one_line(str(exc)))


def worst(verdicts: list[Verdict]) -> Kind:
    kinds = {v.kind for v in verdicts}
    return next((k for k in SEVERITY if k in kinds), Kind.DONE)


def state_message(verdict: Verdict) -> str:
    prefix = PREFIXES.get(verdict.kind)
    if prefix is None:
        return verdict.line
    return f"{prefix}: {verdict.line}" if verdict.line else prefix


def to_state(verdict: Verdict, data: Any = None) -> State[Any]:
    """The flow run's final state. Failed states carry no data: nothing is pickled for them."""
    from prefect.states import Cancelled, Completed, Failed  # noqa: PLC0415 - core runs without Prefect

    message = state_message(verdict)
    if verdict.kind in (Kind.DONE, Kind.SKIPPED):
        return Completed(message=message or None, data=data)
    if verdict.kind is Kind.INTERRUPTED:
        return Cancelled(message=message)
    return Failed(message=message)


def from_message(kind_if_plain: Kind, message: str | None) -> Verdict:
    """A state message read back: its prefix names the kind, the rest is the line."""
    text = one_line(message or "")
    for kind, prefix in PREFIXES.items():
        if text == prefix or text.startswith(f"{prefix}: "):
            return Verdict(kind, text[len(prefix) + 2 :])
    return Verdict(kind_if_plain, text)


def from_state(state: State[Any]) -> Verdict:
    """How a run that went through Prefect ended (the inverse of ``to_state``)."""
    if state.is_completed():
        return from_message(Kind.DONE, state.message)
    if state.is_crashed():
        return Verdict(
            Kind.INFRASTRUCTURE, one_line(f"the run crashed: {state.message or 'its process died'}")
        )
    if state.is_cancelled() or state.is_cancelling():
        return from_message(Kind.INTERRUPTED, state.message or "cancelled")
    if state.is_failed():
        return from_message(Kind.INFRASTRUCTURE, state.message)
    return Verdict(Kind.INFRASTRUCTURE, one_line(f"the run ended {state.name}: {state.message or ''}"))
