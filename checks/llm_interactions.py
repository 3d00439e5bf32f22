"""llm_interactions: the day's LLM calls, their tokens and costs.

Every expectation is ``warn``: value quality that the score trends (no key, reference or volume
expectation here).
"""

from __future__ import annotations

from checks import Suite, between, in_set, not_in_future, not_null, rows_where

SUITES = (
    Suite(
        name="llm_interactions",
        table="llm_interactions",
        time_column="created_at",
        description="LLM calls: costs non-negative, successful calls answered and timed.",
        expectations=(
            not_null("provider"),
            in_set("provider", ["openai", "anthropic", "google", "mistral", "local", "azure"]),
            between("cost_usd", min_value=0, weight=2.0),
            between("temperature", min_value=0, max_value=2),
            rows_where("success_has_response", "status = 'success' AND response_text IS NULL", weight=2.0),
            rows_where("success_has_latency", "status = 'success' AND latency_ms IS NULL"),
            rows_where("error_has_message", "status = 'error' AND error_message IS NULL"),
            not_in_future("created_at"),
        ),
    ),
)
