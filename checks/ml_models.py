"""ml_models (the registry as of the day's end) and model_evaluations (the day's evaluations).

Severity ``error``: a deployed model without an artifact (serving points at nothing: a broken
reference to the artifact store, like a dangling foreign key), and an evaluation delivered twice
(the key model, metric, type, time). The rest lowers the score.
"""

from __future__ import annotations

from checks import (
    ERROR,
    WINDOW_END,
    Suite,
    between,
    compound_unique,
    in_set,
    not_null,
    rows_where,
)

SUITES = (
    Suite(
        name="ml_models",
        table="ml_models",
        time_column="created_at",
        scope="as_of",
        description="The model registry: deployed models have an artifact and a deployment time.",
        expectations=(
            not_null("framework"),
            rows_where(
                "deployed_have_artifact",
                "status = 'deployed' AND artifact_uri IS NULL",
                weight=2.0,
                severity=ERROR,  # a reference to nothing: see the module's docstring
            ),
            rows_where("deployed_have_deployed_at", "status = 'deployed' AND deployed_at IS NULL"),
            between("model_size_bytes", min_value=0),
            between("created_at", max_value=WINDOW_END, key="created_at_not_after_window"),
        ),
    ),
    Suite(
        name="model_evaluations",
        table="model_evaluations",
        time_column="evaluated_at",
        description="The day's evaluations: known metrics, probabilities within [0,1], no re-delivery.",
        expectations=(
            in_set("metric_name", ["accuracy", "precision", "recall", "f1", "auc", "rmse", "mae", "loss"]),
            rows_where(
                "probability_metrics_in_unit_interval",
                "metric_name IN ('accuracy', 'precision', 'recall', 'f1', 'auc')"
                " AND NOT (metric_value >= 0 AND metric_value <= 1)",
                weight=2.0,
            ),
            not_null("sample_size"),
            between("sample_size", min_value=1),
            compound_unique(  # error: the evaluation's key
                ["model_id", "metric_name", "evaluation_type", "evaluated_at"], key="no_duplicates"
            ),
        ),
    ),
)
