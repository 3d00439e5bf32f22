"""Every job pgtender runs: one line each. The CLI, the served deployments and their forms, the
work-pool entrypoints and prefect.yaml files, the watchdog's schedules and the backfill's job list
are all made from this list (docs/development.md: "Where a new job goes")."""

from __future__ import annotations

from flows import backfill, capacity, health, partitions, quality, report, retention, upkeep, views
from flows.core.engine import JobRegistry

REGISTRY = JobRegistry(
    [
        backfill.SPEC,
        capacity.SPEC,
        health.SPEC,
        partitions.SPEC,
        quality.SPEC,
        report.SPEC,
        retention.SPEC,
        upkeep.SPEC,
        views.SPEC,
    ]
)
