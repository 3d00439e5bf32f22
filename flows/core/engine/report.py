"""What a run comes to: one ``TargetResult`` per target, and the ``RunReport`` over all of them.

The report's verdict is its worst target's (a sweep over several targets is as bad as its worst
one); its line says every target's outcome when there are several. Nothing here is kept after the
call that made it: the engine returns the report, the caller maps it (``verdicts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from flows.core.engine import verdicts
from flows.core.engine.outcomes import Kind, Outcome, ProblemsFound, Skipped
from flows.core.engine.verdicts import Verdict
from flows.core.errors import PgtenderError


@dataclass(frozen=True, kw_only=True)
class TargetResult:
    """How one target's run ended: an outcome, or an error (never both)."""

    target: str
    outcome: Outcome | None = None
    error: PgtenderError | None = None
    operation_id: UUID | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return verdicts.of_error(self.error)
        assert self.outcome is not None
        return Verdict(self.outcome.kind, verdicts.one_line(self.outcome.message))

    @property
    def result(self) -> dict[str, Any]:
        return dict(self.outcome.result) if self.outcome is not None else {}

    def row(self) -> dict[str, Any]:
        """One row of the fleet artifact: names and outcomes only, never a URL."""
        v = self.verdict
        return {"target": self.target, "outcome": str(v.kind), "message": v.line}


@dataclass(frozen=True, kw_only=True)
class RunReport:
    job: str
    results: list[TargetResult]
    fleet: bool = False  # several configured targets (else the single target's line is the run's)
    error: PgtenderError | None = None  # bad input before any target was touched

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return verdicts.of_error(self.error)
        if not self.fleet and len(self.results) == 1:
            return self.results[0].verdict
        kind = verdicts.worst([r.verdict for r in self.results])
        if self.results and all(r.verdict.kind is Kind.SKIPPED for r in self.results):
            kind = Kind.SKIPPED
        return Verdict(kind, self.summary())

    def summary(self) -> str:
        """One line: each target's outcome (with its message when it is not plain done)."""
        parts = []
        for r in self.results:
            v = r.verdict
            detail = f" ({v.line})" if v.kind is not Kind.DONE and v.line else ""
            parts.append(f"{r.target}: {v.kind}{detail}")
        return f"{self.job} over {len(self.results)} target(s): " + "; ".join(parts)

    def data(self) -> dict[str, Any]:
        """Small values for the flow run's result: each target's outcome and result."""
        if not self.fleet and len(self.results) == 1:
            return {"target": self.results[0].target, **self.results[0].result}
        return {
            "targets": {
                r.target: {"outcome": str(r.verdict.kind), "message": r.verdict.line, "result": r.result}
                for r in self.results
            }
        }

    def findings(self) -> list[str]:
        out = []
        for r in self.results:
            if isinstance(r.outcome, ProblemsFound):
                out += [f"{r.target}: {f}" for f in r.outcome.findings]
        return out

    def skipped(self) -> bool:
        return bool(self.results) and all(isinstance(r.outcome, Skipped) for r in self.results)
