"""A job, declared once: ``JobSpec``. Everything that runs or shows a job — the CLI's commands, the
served deployments and their UI forms, the work-pool entrypoints and prefect.yaml files, the
watchdog's schedules, the backfill's job list — is derived from the registry of these.

A job's parameters are a pydantic model (``Params``): the UI form, the CLI options and the one
validation every path goes through. ``plan`` runs inside each target, on the run's own session,
before the run's lock is taken: it reads what the run depends on there (the database's clock, the
target's policy) and returns the ``Plan``: the work, what the ledger records of the parameters, and
the day a day-scoped lock covers. A ``ConfigError`` from it is bad input: the run is recorded as
rejected and nothing is changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import psycopg
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from flows.core.engine.context import Run
    from flows.core.engine.outcomes import Outcome
    from flows.core.engine.report import RunReport
    from flows.core.fleet.targets import Target
    from flows.core.policy.settings import Policy
    from flows.core.schedules import Schedule

Conn = psycopg.Connection[tuple[Any, ...]]


class Params(BaseModel):
    """A job's parameters (the UI form's fields, the CLI's options). Subclass per job; describe each
    field with ``Field(description=...)``: that is the form's help text."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


class LockScope(StrEnum):
    JOB = "job"  # one run of the job at a time per database
    DAY = "day"  # one run per (job, day): a run of another day (a backfill) does not wait


class Overlap(StrEnum):
    """What the deployment does with a new run while one is running (Prefect's collision strategy)."""

    ENQUEUE = "ENQUEUE"
    CANCEL_NEW = "CANCEL_NEW"


@dataclass(frozen=True)
class Cron:
    """A default schedule: cron in UTC, or cron and time zone a policy names (the report's zone,
    upkeep's window)."""

    expression: str | Callable[[Policy], str]
    timezone: Callable[[Policy], str] | None = None

    def in_policy(self, policy: Policy) -> Schedule:
        from flows.core.schedules import Schedule  # noqa: PLC0415 - schedules imports no engine module

        cron = self.expression if isinstance(self.expression, str) else self.expression(policy)
        return Schedule(cron, self.timezone(policy) if self.timezone else "UTC")


@dataclass(frozen=True, kw_only=True)
class Planning:
    """What ``plan`` may read: the run's session, its target and policy, the database's now."""

    conn: Conn
    target: Target
    policy: Policy  # the target's (the file's with its overrides)
    file_policy: Policy  # the file's, for what the whole fleet shares
    now: datetime
    registry: Registry


@dataclass(frozen=True, kw_only=True)
class Plan:
    """One target's run: its work, the parameters the ledger records, the day a DAY lock covers."""

    work: Callable[[Run], Outcome]
    params: Mapping[str, Any] = field(default_factory=dict)
    day: date | str | None = None  # what a DAY lock covers (a date, or a backfill's request key)


# --------------------------------------------------------------------------- backfill's view of a job


@dataclass(frozen=True, kw_only=True)
class ReplayContext:
    """What a replay needs besides the connection (plain values)."""

    policy: Policy
    now: datetime
    state_dir: Path  # the target's
    dsn: str = field(repr=False)  # the target's (GX connects on its own)
    flow_run_id: str | None = None
    operation_id: Any = None
    days: tuple[date, date] | None = None  # the backfill's whole range (what rollups recompute)


@dataclass(frozen=True)
class Replayed:
    """The outcome of one replay: ``problems`` when the work ran and found problems."""

    problems: bool
    detail: str
    counts: dict[str, Any] = field(default_factory=dict)


# Day jobs get a date; range jobs get None (once per range). None back: another run holds the lock.
Replay = Callable[[Conn, date | None, ReplayContext], Replayed | None]


class Phase(StrEnum):
    """When a backfill runs a job's replay: once before the days, for each day, once after them."""

    BEFORE = "before"
    DAY = "day"
    AFTER = "after"


@dataclass(frozen=True)
class Replays:
    """How ``backfill`` re-does a job: ``fn`` per day, or once for the whole range (before or after
    the days); ``default``: part of a backfill that names no jobs."""

    fn: Replay
    phase: Phase = Phase.DAY
    default: bool = False


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True, kw_only=True)
class JobSpec(Generic[P]):
    """One job: its name, parameters, schedule, lock, plan — and how the fleet and backfill see it."""

    name: str
    description: str  # first paragraph: the deployment's description and the CLI's help
    params: type[P]
    plan: Callable[[Planning, P], Plan]
    schedule: Cron | None = None  # None: on demand only
    lock: LockScope = LockScope.JOB
    overlap: Overlap = Overlap.ENQUEUE
    tags: tuple[str, ...] = ()
    replay: Replays | None = None
    writes: bool = True  # a job that writes: a replica named for it is bad input
    # Before any target is touched (bad input over the fleet): the parameters against the file's policy.
    check: Callable[[Policy, P], None] | None = None
    # After every target ran (e.g. one email over the fleet): may turn the report into another one.
    after: Callable[[RunReport, P, Policy, Any], RunReport] | None = None

    def parse(self, values: Mapping[str, Any]) -> P:
        """The parameters, validated (``ConfigError`` naming the field on bad input)."""
        from pydantic import ValidationError  # noqa: PLC0415

        from flows.core.errors import ConfigError  # noqa: PLC0415

        unknown = sorted(set(values) - set(self.params.model_fields))
        if unknown:
            raise ConfigError(f"job {self.name!r} does not take --{unknown[0].replace('_', '-')}")
        try:
            return self.params.model_validate(dict(values))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "parameters"
            given = values.get(str(first["loc"][0])) if first["loc"] else None
            shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
            raise ConfigError(f"{where.replace('_', '-')}: {first['msg']}{shown}") from None


class Registry(Protocol):
    """Every job pgtender knows (``flows.registry`` holds the list)."""

    def get(self, name: str) -> JobSpec[Any]: ...

    def names(self) -> list[str]: ...

    def schedules(self, policy: Policy) -> dict[str, Schedule]: ...

    def replays(self) -> dict[str, Replays]: ...


def validate(spec: JobSpec[Any], values: Mapping[str, Any], policy: Any) -> Params:
    """The parameters, validated and checked against the policy file, before any target is touched
    (``ConfigError``, one line)."""
    params: Params = spec.parse(values)
    if spec.check is not None:
        spec.check(policy, params)
    return params
