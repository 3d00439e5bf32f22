"""evolution_individuals: the day's OpenEvolve candidate solutions.

Severity ``error``: a rank given twice in a generation (the key (generation, rank)). The rest lowers
the score.
"""

from __future__ import annotations

from checks import Suite, between, compound_unique, not_in_future, not_null, rows_where

SUITES = (
    Suite(
        name="evolution_individuals",
        table="evolution_individuals",
        time_column="created_at",
        description="Individuals: evaluated ones have a finite fitness, ranks unique per generation.",
        expectations=(
            not_null("experiment_id"),
            rows_where(
                "evaluated_have_fitness", "evaluated_at IS NOT NULL AND fitness_score IS NULL", weight=2.0
            ),
            between(
                "fitness_score", min_value=-1e300, max_value=1e300, key="fitness_score_finite", weight=2.0
            ),
            compound_unique(  # error: the key (generation, rank)
                ["generation_id", "rank_in_generation"],
                ignore_row_if="any_value_is_missing",
                key="rank_unique_in_generation",
            ),
            not_in_future("created_at"),
        ),
    ),
)
