"""predictions: the day's model predictions.

Severity ``error``: the volume band (``volume=True``). The rest lowers the score.
"""

from __future__ import annotations

from checks import Suite, between, in_set, not_in_future, not_null, rows_where

SUITES = (
    Suite(
        name="predictions",
        table="predictions",
        time_column="predicted_at",
        volume=True,
        description="Predictions: confidence within [0,1], targets named, outcomes consistent.",
        expectations=(
            not_null("confidence", weight=2.0),
            between("confidence", min_value=0, max_value=1, weight=2.0),
            in_set("target_entity_type", ["code_file", "function", "module", "commit", "repository", "user"]),
            not_null("target_entity_id"),
            rows_where("resolved_have_actual", "resolved_at IS NOT NULL AND actual_value IS NULL"),
            rows_where("correctness_needs_actual", "is_correct IS NOT NULL AND actual_value IS NULL"),
            not_in_future("predicted_at"),
        ),
    ),
)
