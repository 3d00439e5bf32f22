"""Running a job of the test's own making through the real engine (its lifecycle, ledger, locks):
for tests of the engine itself, where a registered job cannot be steered into every ending."""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import date
from typing import Any

from flows.core.engine import JobSpec, LockScope, Params, PlainOrchestrator, Plan, RunReport
from flows.core.engine import run as run_engine
from flows.core.fleet import targets
from flows.edge.context import run_context
from flows.registry import REGISTRY


def custom_spec(
    work: Callable[..., Any],
    *,
    job: str = "views",
    lock: LockScope = LockScope.JOB,
    day: Any = None,
    plan_error: BaseException | None = None,
) -> JobSpec[Params]:
    def plan(_planning: Any, _params: Params) -> Plan:
        if plan_error is not None:
            raise plan_error
        return Plan(work=work, params={"custom": True}, day=day)

    return JobSpec(name=job, description="a test's job", params=Params, plan=plan, lock=lock)


def custom_run(work: Callable[..., Any], *, orchestrator: Any = None, **options: Any) -> RunReport:
    """``work(run)`` as the work of a job named ``views`` (by default), through the engine, here."""
    ctx = run_context(orchestrator or PlainOrchestrator())
    chosen = targets.select(None, ctx.settings, ctx.policy, embedded=ctx.embedded)
    return run_engine(custom_spec(work, **options), Params(), chosen, ctx)


def minimal_values(job: str, yesterday: date) -> dict[str, Any]:
    """The least a job's form needs: its required fields (a day field gets yesterday)."""
    values: dict[str, Any] = {}
    for name, field in REGISTRY.get(job).params.model_fields.items():
        if field.annotation is bool and name == "dry_run":
            values[name] = True  # nothing to change if it ran after all
        elif field.is_required():
            assert date in (field.annotation, *typing.get_args(field.annotation)), (job, name)
            values[name] = yesterday.isoformat()
    return values
