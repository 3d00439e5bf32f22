-- 0004: pattern recognition, predictions, recommendations, A/B testing (seed 03_pattern_recognition).
-- NaN note: PostgreSQL sorts NaN above every number, so `x >= 0 AND x <= 1` rejects NaN while
-- `x >= 0` alone would not; open-ended ranges therefore also say `x < 'Infinity'`.

CREATE TABLE identified_patterns (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    pattern_type          text        NOT NULL CHECK (pattern_type <> ''),
    pattern_name          text        NOT NULL CHECK (pattern_name <> ''),
    description           text,
    pattern_signature     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    confidence_score      double precision NOT NULL CHECK (confidence_score >= 0 AND confidence_score <= 1),
    severity              text        NOT NULL DEFAULT 'medium'
                                      CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    status                text        NOT NULL DEFAULT 'active'
                                      CHECK (status IN ('active', 'resolved', 'ignored', 'false_positive')),
    occurrence_count      bigint      NOT NULL DEFAULT 0 CHECK (occurrence_count >= 0),
    first_detected_at     timestamptz NOT NULL DEFAULT now(),
    last_detected_at      timestamptz,
    detected_by_model_id  uuid        REFERENCES ml_models (id) ON DELETE SET NULL,
    metadata              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
    -- No UNIQUE (pattern_type, pattern_name): detectors may legitimately re-register a pattern
    -- with another signature; duplicates are a data-quality concern, not a constraint.
);
CREATE INDEX identified_patterns_type_name_idx ON identified_patterns (pattern_type, pattern_name);
CREATE INDEX identified_patterns_last_detected_idx ON identified_patterns (last_detected_at);
CREATE INDEX identified_patterns_model_idx ON identified_patterns (detected_by_model_id) WHERE detected_by_model_id IS NOT NULL;
COMMENT ON TABLE identified_patterns IS 'Patterns detected in code/usage, with confidence and severity.';

CREATE TABLE pattern_occurrences (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    pattern_id     uuid        NOT NULL REFERENCES identified_patterns (id) ON DELETE CASCADE,
    source_type    text        NOT NULL CHECK (source_type <> ''),
    source_id      text        NOT NULL,
    location_data  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    context        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    confidence     double precision CHECK (confidence >= 0 AND confidence <= 1),
    detected_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pattern_occurrences_resolved_check CHECK (resolved_at IS NULL OR resolved_at >= detected_at)
);
CREATE INDEX pattern_occurrences_pattern_detected_idx ON pattern_occurrences (pattern_id, detected_at DESC);
CREATE INDEX pattern_occurrences_source_idx ON pattern_occurrences (source_type, source_id);
CREATE INDEX pattern_occurrences_detected_at_idx ON pattern_occurrences (detected_at);
COMMENT ON TABLE pattern_occurrences IS 'Concrete instances of an identified pattern in a source object.';

CREATE TABLE predictions (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id             uuid        NOT NULL REFERENCES ml_models (id) ON DELETE CASCADE,
    prediction_type      text        NOT NULL CHECK (prediction_type <> ''),
    target_entity_type   text        NOT NULL CHECK (target_entity_type <> ''),
    target_entity_id     text,
    input_features       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    predicted_value      jsonb       NOT NULL,
    confidence           double precision CHECK (confidence >= 0 AND confidence <= 1),
    confidence_interval  jsonb,
    actual_value         jsonb,
    is_correct           boolean,
    feedback             jsonb,
    predicted_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT predictions_resolved_check CHECK (resolved_at IS NULL OR resolved_at >= predicted_at)
);
CREATE INDEX predictions_model_predicted_idx ON predictions (model_id, predicted_at DESC);
CREATE INDEX predictions_type_predicted_idx ON predictions (prediction_type, predicted_at);
CREATE INDEX predictions_target_idx ON predictions (target_entity_type, target_entity_id);
CREATE INDEX predictions_predicted_at_idx ON predictions (predicted_at);
CREATE INDEX predictions_unresolved_idx ON predictions (predicted_at) WHERE actual_value IS NULL;
COMMENT ON TABLE predictions IS 'Model predictions and, once known, the actual outcome.';

CREATE TABLE recommendations (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    pattern_id           uuid        REFERENCES identified_patterns (id) ON DELETE SET NULL,
    prediction_id        uuid        REFERENCES predictions (id) ON DELETE SET NULL,
    model_id             uuid        REFERENCES ml_models (id) ON DELETE SET NULL,
    recommendation_type  text        NOT NULL CHECK (recommendation_type <> ''),
    title                text        NOT NULL CHECK (title <> ''),
    description          text,
    priority             text        NOT NULL DEFAULT 'medium'
                                     CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    confidence           double precision CHECK (confidence >= 0 AND confidence <= 1),
    expected_impact      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    action_items         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    target_entity_type   text,
    target_entity_id     text,
    status               text        NOT NULL DEFAULT 'pending'
                                     CHECK (status IN ('pending', 'accepted', 'rejected', 'implemented', 'dismissed', 'expired')),
    acted_at             timestamptz,
    expires_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendations_status_idx ON recommendations (status, created_at DESC);
CREATE INDEX recommendations_pattern_id_idx ON recommendations (pattern_id);
CREATE INDEX recommendations_prediction_id_idx ON recommendations (prediction_id);
CREATE INDEX recommendations_model_id_idx ON recommendations (model_id);
COMMENT ON TABLE recommendations IS 'Actionable recommendations derived from patterns and predictions.';

CREATE TABLE ab_testing_experiments (
    id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text        NOT NULL CHECK (name <> ''),
    description             text,
    hypothesis              text,
    control_model_id        uuid        REFERENCES ml_models (id) ON DELETE SET NULL,
    treatment_model_id      uuid        REFERENCES ml_models (id) ON DELETE SET NULL,
    variants                jsonb       NOT NULL DEFAULT '[]'::jsonb,
    traffic_split           jsonb       NOT NULL DEFAULT '{"control": 0.5, "treatment": 0.5}'::jsonb,
    primary_metric          text        NOT NULL CHECK (primary_metric <> ''),
    secondary_metrics       text[],
    target_sample_size      integer     CHECK (target_sample_size > 0),
    control_sample_size     bigint      NOT NULL DEFAULT 0 CHECK (control_sample_size >= 0),
    treatment_sample_size   bigint      NOT NULL DEFAULT 0 CHECK (treatment_sample_size >= 0),
    control_metric_value    double precision CHECK (control_metric_value > '-Infinity' AND control_metric_value < 'Infinity'),
    treatment_metric_value  double precision CHECK (treatment_metric_value > '-Infinity' AND treatment_metric_value < 'Infinity'),
    effect_size             double precision CHECK (effect_size > '-Infinity' AND effect_size < 'Infinity'),
    p_value                 double precision CHECK (p_value >= 0 AND p_value <= 1),
    confidence_level        double precision NOT NULL DEFAULT 0.95 CHECK (confidence_level > 0 AND confidence_level < 1),
    status                  text        NOT NULL DEFAULT 'draft'
                                        CHECK (status IN ('draft', 'running', 'paused', 'completed', 'cancelled')),
    winner                  text        CHECK (winner IN ('control', 'treatment', 'inconclusive')),
    started_at              timestamptz,
    ended_at                timestamptz,
    results                 jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ab_testing_experiments_name_key UNIQUE (name),
    CONSTRAINT ab_testing_experiments_time_check CHECK (ended_at IS NULL OR started_at IS NULL OR ended_at >= started_at),
    CONSTRAINT ab_testing_experiments_winner_status_check CHECK (winner IS NULL OR status = 'completed')
);
CREATE INDEX ab_testing_experiments_status_idx ON ab_testing_experiments (status, started_at DESC);
CREATE INDEX ab_testing_experiments_control_model_idx ON ab_testing_experiments (control_model_id);
CREATE INDEX ab_testing_experiments_treatment_model_idx ON ab_testing_experiments (treatment_model_id);
COMMENT ON TABLE ab_testing_experiments IS 'A/B tests between a control and a treatment model.';

-- Materialise the owner's default ACL (privileges unchanged). A REVOKE never resets an ACL to NULL,
-- so without this 0009's GRANT + REVOKE would leave these objects with an explicit ACL and a
-- rollback past 0009 would not restore this step's catalog exactly.
GRANT ALL ON TABLE identified_patterns, pattern_occurrences, predictions, recommendations, ab_testing_experiments TO CURRENT_USER;
