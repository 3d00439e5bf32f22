"""pattern_occurrences: the day's detected pattern instances.

Severity ``error``: an occurrence detected twice (the key pattern, source, time). The rest lowers
the score.
"""

from __future__ import annotations

from checks import Suite, between, compound_unique, in_set, not_in_future, not_null

SUITES = (
    Suite(
        name="pattern_occurrences",
        table="pattern_occurrences",
        time_column="detected_at",
        description="Occurrences: confident, known sources, detected once.",
        expectations=(
            not_null("confidence"),
            between("confidence", min_value=0, max_value=1, weight=2.0),
            in_set(
                "source_type", ["code_file", "function", "module", "commit", "pull_request", "repository"]
            ),
            compound_unique(  # error: the occurrence's key
                ["pattern_id", "source_type", "source_id", "detected_at"], key="detected_once"
            ),
            not_in_future("detected_at"),
        ),
    ),
)
