"""Errors that map onto pgtender's exit codes (DESIGN.md: 0 done, 1 problems, 2 bad input, 3 infra)."""

from __future__ import annotations

from flows.masking import mask_secrets


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


class ProblemsFound(PgtenderError):
    """The job ran and found problems (failed checks, breached thresholds)."""

    exit_code = 1


class JobSkipped(PgtenderError):
    """Another run of the same job holds its lock (or this is a replica): nothing to do."""

    exit_code = 0
