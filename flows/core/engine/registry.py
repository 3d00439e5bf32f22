"""The registry type: the jobs pgtender knows, by name (``flows.registry`` lists them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flows.core.engine.spec import JobSpec, Replays
from flows.core.errors import ConfigError

if TYPE_CHECKING:
    from flows.core.policy.settings import Policy
    from flows.core.schedules import Schedule


class JobRegistry:
    """Jobs by name; the schedules of those that have one."""

    def __init__(self, specs: Sequence[JobSpec[Any]]) -> None:
        self._specs = {s.name: s for s in specs}
        if len(self._specs) != len(specs):
            raise ValueError("two jobs share a name")

    def get(self, name: str) -> JobSpec[Any]:
        spec = self._specs.get(name)
        if spec is None:
            raise ConfigError(f"unknown job {name!r}; known jobs: {', '.join(self.names())}")
        return spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[JobSpec[Any]]:
        return [self._specs[n] for n in self.names()]

    def schedules(self, policy: Policy) -> dict[str, Schedule]:
        """Every scheduled job's schedule (in the policy's time zones): what the watchdog expects."""
        return {s.name: s.schedule.in_policy(policy) for s in self.specs() if s.schedule is not None}

    def replays(self) -> dict[str, Replays]:
        """The jobs a backfill can re-do, by name."""
        return {s.name: s.replay for s in self.specs() if s.replay is not None}
