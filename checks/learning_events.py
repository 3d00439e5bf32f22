"""learning_events: the partitioned event stream, validated one UTC day (one partition's range).

Severity ``error`` (fails the suite whatever the score): the volume band (``volume=True``), ids
unique, model ids that name a model, fresh until the day's end. The rest lowers the score.
"""

from __future__ import annotations

from datetime import timedelta

from checks import (
    Suite,
    fresh,
    in_set,
    not_in_future,
    not_null,
    references,
    unique,
)

GIT_OPERATIONS = [
    "commit", "push", "pull", "merge", "rebase", "checkout",
    "clone", "fetch", "tag", "revert", "cherry_pick", "stash",
]  # fmt: skip

EVENT_TYPES = [
    "model_prediction",
    "pattern_detected",
    "code_evaluated",
    "training_step",
    "user_feedback",
    "recommendation_shown",
    "recommendation_accepted",
    "evolution_step",
    "user_session",
    *(f"git_{op}" for op in GIT_OPERATIONS),
]

SUITES = (
    Suite(
        name="learning_events",
        table="learning_events",
        time_column="occurred_at",
        volume=True,
        requires_rows=True,
        description="Daily event stream: known types, sessions, no future events, known models.",
        expectations=(
            in_set("event_type", EVENT_TYPES, weight=2.0),
            not_null("session_id"),
            not_null("user_id", mostly=0.99),
            in_set("source", ["api", "worker", "scheduler", "ui", "git", "user_session"]),
            not_in_future("occurred_at", weight=2.0),
            not_in_future("ingested_at"),
            unique("id", weight=2.0),  # error: the event's key
            references("model_id", "ml_models"),  # error: no FK guards it
            fresh("occurred_at", max_gap=timedelta(hours=2)),  # error: the feed stopped
        ),
    ),
)
