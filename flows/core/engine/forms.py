"""Types of the jobs' flow parameters. Prefect builds every deployment's run form from the flow
signatures (``serve``, ``up`` and ``prefect deploy`` alike), so the types and their constraints
live on the parameters themselves and the server refuses a submission that breaks them when the
run is created; what a schema cannot say (start <= end, not in the future) the flow checks first,
naming the form's fields. Descriptions come from each flow's docstring (``Args:``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A day is a ``datetime.date``: the UI shows a date picker; the CLI passes YYYY-MM-DD.
DryRun = Annotated[bool, Field(json_schema_extra={"examples": [False]})]
IsoWeek = Annotated[str, Field(pattern=r"^\d{4}-W\d{2}$", examples=["2026-W47"])]
Recipients = Annotated[
    str,
    Field(pattern=r"^\s*[^@\s,]+@[^@\s,]+(\s*,\s*[^@\s,]+@[^@\s,]+)*\s*$", examples=["oncall@example.com"]),
]
SuiteName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", examples=["learning_events"])]


class _Replayable:
    """Marks a parameter whose values are names of jobs backfill can re-run: the form lists them
    (``flows.edge.flows`` puts the registry's names there); the run's plan checks them."""


REPLAYABLE = _Replayable()
ReplayableJob = Annotated[str, REPLAYABLE]
# One database of the fleet ([targets.NAME] in the policy file). Empty: every target.
TargetName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$", examples=["default"])]
