"""The run engine: one lifecycle for every job, whatever starts it (docs/development.md).

A job declares a ``JobSpec`` (parameters, schedule, lock scope, plan); its steps are ``@step``
functions of a ``Run``; ``start`` runs it over its targets with an explicit ``RunContext`` and
returns a ``RunReport``; ``verdicts`` maps the report to a ledger status, a Prefect state and an
exit code — once each.
"""

from flows.core.engine.context import Finished, Orchestrator, Run, RunContext
from flows.core.engine.outcomes import (
    NOT_PASSED,
    CheckStatus,
    Done,
    Kind,
    Outcome,
    ProblemsFound,
    Skipped,
    Status,
)
from flows.core.engine.registry import JobRegistry
from flows.core.engine.report import RunReport, TargetResult
from flows.core.engine.run import run, start
from flows.core.engine.spec import (
    Cron,
    JobSpec,
    LockScope,
    Overlap,
    Params,
    Phase,
    Plan,
    Planning,
    Registry,
    Replay,
    ReplayContext,
    Replayed,
    Replays,
    validate,
)
from flows.core.engine.steps import PlainOrchestrator, Step, is_transient, step
from flows.core.engine.verdicts import Verdict

__all__ = [
    "NOT_PASSED",
    "CheckStatus",
    "Cron",
    "Done",
    "Finished",
    "JobRegistry",
    "JobSpec",
    "Kind",
    "LockScope",
    "Orchestrator",
    "Outcome",
    "Overlap",
    "Params",
    "Phase",
    "PlainOrchestrator",
    "Plan",
    "Planning",
    "ProblemsFound",
    "Registry",
    "Replay",
    "ReplayContext",
    "Replayed",
    "Replays",
    "Run",
    "RunContext",
    "RunReport",
    "Skipped",
    "Status",
    "Step",
    "TargetResult",
    "Verdict",
    "is_transient",
    "run",
    "start",
    "step",
    "validate",
]
