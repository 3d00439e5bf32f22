"""The typed outcome of one job run: ``Done``, ``Skipped(reason)`` or ``ProblemsFound(findings)``.

A job's work returns one of these; the run lifecycle (``flows.core.lifecycle``) writes it to the
ledger (completed / skipped / problems) and turns it into the flow run's final Prefect state:
Completed, Completed named "Skipped", or Failed named "Problems found" with a one-line message
listing the findings (no traceback: a finding is not a crash). Errors are not outcomes: bad
input and infrastructure failures are raised (``flows.core.errors``) and end in a Failed state
named for their kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """A run's status in the ledger (``pgtender_operations.status``)."""

    STARTED = "started"
    COMPLETED = "completed"
    PROBLEMS = "problems"
    SKIPPED = "skipped"
    FAILED = "failed"
    ABANDONED = "abandoned"


class CheckStatus(StrEnum):
    """The status of one check in ``data_quality_checks`` (quality expectations, health probes)."""

    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


NOT_PASSED = (CheckStatus.FAILED, CheckStatus.ERROR)

# Names of the final Prefect states (the UI's run list shows them; the CLI maps them to exit codes).
PROBLEMS_STATE = "Problems found"
SKIPPED_STATE = "Skipped"
BAD_INPUT_STATE = "Bad input"
INFRASTRUCTURE_STATE = "Infrastructure error"


@dataclass(frozen=True, kw_only=True)
class Done:
    """The work ran and found nothing wrong. ``result``: the flow's (small) return value."""

    result: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    status = Status.COMPLETED


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """Nothing was done, on purpose (another run holds the lock; this server is a replica)."""

    reason: str
    result: dict[str, Any] = field(default_factory=dict)

    status = Status.SKIPPED

    @property
    def message(self) -> str:
        return self.reason


@dataclass(frozen=True, kw_only=True)
class ProblemsFound:
    """The work ran to the end and found problems: failed checks, breached thresholds, failed views."""

    findings: list[str]
    result: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    status = Status.PROBLEMS

    @property
    def message(self) -> str:
        """One line: the summary, then the first findings."""
        head = self.summary or f"{len(self.findings)} problem(s) found"
        shown = "; ".join(self.findings[:10])
        more = f" (+{len(self.findings) - 10} more)" if len(self.findings) > 10 else ""
        return " ".join(f"{head}: {shown}{more}".split()) if shown else head


Outcome = Done | Skipped | ProblemsFound
