"""The quality job's input (day, suite) and the per-suite policy it applies."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from checks import Expectation, Severity, Suite, all_suites
from flows.core import clock
from flows.core.errors import ConfigError
from flows.core.policy.settings import QualityPolicy, QualitySuitePolicy
from flows.quality.compiler import Window

Conn = psycopg.Connection[tuple[Any, ...]]
# The key of the volume band a ``Suite(volume=True)`` gets (its severity: error).
VOLUME_KEY = "row_count_in_band"


def parse_day(day: str | date | None, *, today: date) -> date:
    """``YYYY-MM-DD``; default: yesterday (UTC) of ``today`` (the database's). Never a day after it."""
    if day is None:
        return today - timedelta(days=1)
    parsed = clock.parse_day(day, "day")
    if parsed > today:
        raise ConfigError(f"day {parsed.isoformat()} is in the future (today is {today.isoformat()} UTC)")
    return parsed


def select_suites(suite: str | None, policy: QualityPolicy) -> list[Suite]:
    """The suites to run: one by name, or every enabled one. Unknown names are ConfigErrors."""
    known = all_suites()
    unknown = sorted(set(policy.suites) - set(known))
    if unknown:
        raise ConfigError(f"policy quality.suites.{unknown[0]}: unknown suite; known: {', '.join(known)}")
    for name, own in policy.suites.items():
        _check_keys(known[name], own)
    if suite is not None:
        if suite not in known:
            raise ConfigError(f"unknown quality suite {suite!r}; known suites: {', '.join(known)}")
        return [known[suite]]
    return [s for name, s in known.items() if _suite_policy(policy, name).enabled]


def expectation_keys(suite: Suite) -> list[str]:
    """The keys the policy may name for a suite: its expectations and, with volume, the band."""
    return [e.key for e in suite.expectations] + ([VOLUME_KEY] if suite.volume else [])


def _check_keys(suite: Suite, own: QualitySuitePolicy) -> None:
    """A severity or weight for an expectation the suite lacks is a typo, never a silent default."""
    keys = expectation_keys(suite)
    for option, named in (("severity", own.severity), ("weights", own.weights)):
        unknown = sorted(set(named) - set(keys))
        if unknown:
            raise ConfigError(
                f"policy quality.suites.{suite.name}.{option}.{unknown[0]}: unknown expectation;"
                f" known: {', '.join(keys)}"
            )


def day_window(day: date, now: datetime) -> Window:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return Window(start=start, end=start + timedelta(days=1), now=now)


def _suite_policy(policy: QualityPolicy, name: str) -> QualitySuitePolicy:
    return policy.suites.get(name) or QualitySuitePolicy()


def threshold_for(suite: Suite, policy: QualityPolicy) -> float:
    own = _suite_policy(policy, suite.name).threshold
    return policy.threshold if own is None else own


def weight_for(exp: Expectation, suite: Suite, policy: QualityPolicy) -> float:
    own = _suite_policy(policy, suite.name).weights
    if exp.key in own:
        return own[exp.key]
    return policy.weights.get(exp.type, exp.weight)


def severity_for(exp: Expectation, suite: Suite, policy: QualityPolicy) -> Severity:
    """The policy's severity for the expectation's key, else the suite's (checks/*.py)."""
    return _suite_policy(policy, suite.name).severity.get(exp.key, exp.severity)


def sample_size_for(suite: Suite, policy: QualityPolicy) -> int:
    own = _suite_policy(policy, suite.name).sample_size
    return policy.sample_size if own is None else own
