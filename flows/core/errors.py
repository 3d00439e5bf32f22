"""Errors that map onto pgtender's exit codes (0 done, 1 problems, 2 bad input, 3 infrastructure).

A job that finds problems *returns* ``ProblemsFound`` (an outcome); ``DataProblem`` is for work that
must stop on one deep inside (a row count that does not add up, an unreadable marker): the engine
turns it into that outcome.
"""

from __future__ import annotations

from flows.core.masking import mask_secrets


class PgtenderError(Exception):
    """Base class: a one-line message meant for the operator, and an exit code."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        # One line, always: operators read these in a terminal or a Prefect log (and Prefect keeps
        # the message as the run's state message): no password, whatever produced the text.
        super().__init__(mask_secrets(" ".join(message.split())))


class ConfigError(PgtenderError):
    """Bad input or configuration; nothing was changed."""

    exit_code = 2


class InfrastructureError(PgtenderError):
    """The database or Prefect could not be reached or failed after retries."""

    exit_code = 3


class DatabaseUnavailable(InfrastructureError):
    """The database could not be reached (connect failed, no pooled connection in time): transient."""


class DataProblem(PgtenderError):
    """The work stopped on a problem in the data (counts that do not add up): exit 1."""

    exit_code = 1


class Interrupted(PgtenderError):
    """SIGTERM or Ctrl-C: the run stopped at its next safe point."""

    exit_code = 143


def raise_worst(what: str, failures: dict[str, BaseException], *, done: str | None = None) -> None:
    """One error for several failed items (tables, targets), of the most telling kind: bad input,
    then findings, then infrastructure. Nothing when nothing failed. ``done``: what the other
    items changed meanwhile (a failed item's "nothing was changed" is about that item only)."""
    if not failures:
        return
    detail = "; ".join(f"{name}: {exc}" for name, exc in failures.items())
    if done:
        detail += f"; done meanwhile: {done}"
    errors = list(failures.values())
    if any(isinstance(e, ConfigError) for e in errors):
        raise ConfigError(f"{what} failed for {detail}")
    if any(isinstance(e, Interrupted) for e in errors):
        raise Interrupted(f"{what} interrupted: {detail}")
    if any(isinstance(e, DataProblem) for e in errors):
        raise DataProblem(f"{what} failed for {detail}")
    raise InfrastructureError(f"{what} failed for {detail}")


class LockLost(InfrastructureError):
    """The session holding the run's advisory lock is gone: another run may now be working."""
