"""system_performance_metrics: the partitioned metric samples, validated one UTC day.

Severity ``error``: the volume band, one sample per series (the series' key) and freshness.
"""

from __future__ import annotations

from datetime import timedelta

from checks import Suite, between, compound_unique, fresh, not_in_future, not_null, rows_where

SUITES = (
    Suite(
        name="system_performance_metrics",
        table="system_performance_metrics",
        time_column="recorded_at",
        volume=True,
        requires_rows=True,
        description="Metric samples: attributed, non-negative, ratios in [0,1], one sample per series.",
        expectations=(
            not_null("component"),
            not_null("host"),
            not_null("unit"),
            between("value", min_value=0),
            rows_where("ratio_in_unit_interval", "unit = 'ratio' AND NOT (value >= 0 AND value <= 1)"),
            compound_unique(  # error: the series' key (samples written twice double every rollup)
                ["metric_name", "component", "host", "recorded_at"], key="one_sample_per_series"
            ),
            not_in_future("recorded_at", weight=2.0),
            fresh("recorded_at", max_gap=timedelta(minutes=30)),  # error: the collector stopped
        ),
    ),
)
