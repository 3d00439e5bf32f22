"""``[fleet]`` and ``[targets.NAME]`` of the policy file: the databases pgtender tends (issue 13).

    [fleet]
    concurrency = 4                 # targets worked on at once in one sweep (threads of one flow run)

    [targets.eu]
    url_env = "PGTENDER_EU_URL"     # the URL from this environment variable on the worker, or
    [targets.us]
    url_secret = "pgtender-us-url"  # from this Prefect Secret block (never in a deployment)
    [targets.us.health]             # any policy section, merged over the file's for this target
    event_lag_max_seconds = 600
    [targets.us.report]
    recipients = ["us-oncall@example.com"]
    timezone = "America/New_York"

The URL itself never appears in the file, a deployment, an artifact or a log.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Policy sections a target may override (every section of the file but fleet and targets).
OVERRIDABLE = (
    "database",
    "capacity",
    "views",
    "health",
    "partitions",
    "retention",
    "quality",
    "report",
    "backfill",
    "alerts",
    "upkeep",
)

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Prefect block names: lowercase letters, digits and dashes.
_BLOCK = re.compile(r"^[a-z0-9][a-z0-9-]*$")

Section = Annotated[dict[str, Any], Field(strict=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FleetPolicy(_Strict):
    """``[fleet]``: how a sweep over the targets runs."""

    # Targets worked on at the same time inside one flow run (each its own connection and lock).
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4


class TargetSpec(_Strict):
    """``[targets.NAME]``: where the target's URL comes from, and its policy overrides."""

    url_env: str | None = None
    url_secret: str | None = None
    database: Section | None = None
    capacity: Section | None = None
    views: Section | None = None
    health: Section | None = None
    partitions: Section | None = None
    retention: Section | None = None
    quality: Section | None = None
    report: Section | None = None
    backfill: Section | None = None
    alerts: Section | None = None  # a target's own channels replace the file's [[alerts.channels]]
    upkeep: Section | None = None

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (give the name, not the URL)")
        return value

    @field_validator("url_secret")
    @classmethod
    def _block_name(cls, value: str | None) -> str | None:
        if value is not None and not _BLOCK.match(value):
            raise ValueError(f"{value!r} is not a Prefect block name (lowercase letters, digits, dashes)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TargetSpec:
        if (self.url_env is None) == (self.url_secret is None):
            raise ValueError(
                "give exactly one of url_env (an environment variable) or url_secret (a Prefect Secret block)"
            )
        return self

    def overrides(self) -> dict[str, Any]:
        return {k: v for k in OVERRIDABLE if (v := getattr(self, k)) is not None}


def check_target_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"target name {name!r}: lowercase letters, digits, '_' or '-', at most 40")
    return name


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` key by key (tables inside tables too); ``base`` is not changed."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
