"""What one run of a job comes to: an ``Outcome`` its work returns (``Done``, ``Skipped``,
``ProblemsFound``), or an error it raises (bad input, infrastructure). ``Kind`` names all of them,
plus an interrupted run; ``flows.core.engine.verdicts`` maps a kind to everything outside (ledger
status, Prefect state, exit code), each in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """How a run ended, as every surface reports it."""

    DONE = "done"
    SKIPPED = "skipped"
    PROBLEMS = "problems found"
    BAD_INPUT = "bad input"
    INFRASTRUCTURE = "infrastructure error"
    INTERRUPTED = "interrupted"


class Status(StrEnum):
    """A run's status in the ledger (``pgtender_operations.status``)."""

    STARTED = "started"
    COMPLETED = "completed"
    PROBLEMS = "problems"
    SKIPPED = "skipped"
    FAILED = "failed"
    REJECTED = "rejected"  # bad input found once the target was reached: nothing changed
    INTERRUPTED = "interrupted"  # SIGTERM / Ctrl-C: stopped at a safe point
    ABANDONED = "abandoned"  # found dead by a later run (kill -9, a lost worker)


class CheckStatus(StrEnum):
    """The status of one check in ``data_quality_checks`` (quality expectations, health probes)."""

    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


NOT_PASSED = (CheckStatus.FAILED, CheckStatus.ERROR)


@dataclass(frozen=True, kw_only=True)
class Done:
    """The work ran and found nothing wrong. ``result``: small values for the ledger and the CLI."""

    result: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    kind = Kind.DONE


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """Nothing was done, on purpose (another run holds the lock; this server is a replica)."""

    reason: str
    result: dict[str, Any] = field(default_factory=dict)

    kind = Kind.SKIPPED

    @property
    def message(self) -> str:
        return self.reason


@dataclass(frozen=True, kw_only=True)
class ProblemsFound:
    """The work ran to the end and found problems: failed checks, breached thresholds, failed views."""

    findings: list[str]
    result: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    kind = Kind.PROBLEMS

    @property
    def message(self) -> str:
        """One line: the summary, then the first findings."""
        head = self.summary or f"{len(self.findings)} problem(s) found"
        shown = "; ".join(self.findings[:10])
        more = f" (+{len(self.findings) - 10} more)" if len(self.findings) > 10 else ""
        return " ".join(f"{head}: {shown}{more}".split()) if shown else head


Outcome = Done | Skipped | ProblemsFound
