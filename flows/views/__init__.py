"""Materialized view refresh (replaces the seed's "View Refresh (every 15 minutes)" pg_cron job).

Every materialized view of the tended schema (minus the policy's deny list, or only its allow
list) is refreshed in dependency order: a view that reads another materialized view (directly or
through ordinary views) refreshes after it. ``CONCURRENTLY`` when the view is populated and has a
unique index over plain columns without a WHERE clause; otherwise a plain refresh (ACCESS
EXCLUSIVE: readers wait) under a short ``lock_timeout``, with a warning that names the missing
index. One run at a time (advisory lock; the deployment also cancels new runs while one runs).

Rollups come first: a table ``T`` with a function ``refresh_T(date, date)`` (0010's
``learning_events_daily``, read through the view ``mv_daily_learning_events``) is recomputed for
the trailing ``rollup_days`` UTC days only, so its cost follows a day's data, not the history;
backfill recomputes the days it re-runs. Per view or rollup: duration, rows and staleness into
``capacity_planning_metrics``. A failing one does not stop the others; the run ends Failed
(ProblemsFound) when any failed.

- ``catalog``: which views and rollups, and their order (``MatView``, ``discover``, ``plan``).
- ``refresh``: one view refreshed and its metrics recorded; every view; backfill's ``replay``.
- ``job``: the steps, the work and ``SPEC``.
"""

from flows.views.catalog import MatView, discover, plan, refresh_order, select_views
from flows.views.job import SPEC, ViewsParams, plan_run, plan_step, refresh_run, refresh_step
from flows.views.refresh import (
    JOB,
    RefreshResult,
    last_successes,
    measurements,
    refresh_all,
    refresh_and_record,
    refresh_view,
    replay,
    rollup_days,
)

__all__ = [
    "JOB",
    "SPEC",
    "MatView",
    "RefreshResult",
    "ViewsParams",
    "discover",
    "last_successes",
    "measurements",
    "plan",
    "plan_run",
    "plan_step",
    "refresh_all",
    "refresh_and_record",
    "refresh_order",
    "refresh_run",
    "refresh_step",
    "refresh_view",
    "replay",
    "rollup_days",
    "select_views",
]
