-- 0002: machine-learning model management (seed 01_learning_models).
-- Conventions for all pgtender tables: uuid primary keys from core gen_random_uuid() (no extension),
-- timestamptz everywhere, jsonb for flexible metadata, CHECKs for ranges and value sets.

CREATE TABLE ml_models (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text        NOT NULL CHECK (name <> ''),
    version            text        NOT NULL CHECK (version <> ''),
    model_type         text        NOT NULL CHECK (model_type <> ''),
    framework          text,
    description        text,
    status             text        NOT NULL DEFAULT 'draft'
                                   CHECK (status IN ('draft', 'training', 'trained', 'validated',
                                                     'deployed', 'deprecated', 'archived', 'failed')),
    hyperparameters    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    feature_names      text[],
    training_metrics   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    artifact_uri       text,
    artifact_checksum  text,
    model_size_bytes   bigint      CHECK (model_size_bytes >= 0),
    parent_model_id    uuid        REFERENCES ml_models (id) ON DELETE SET NULL,
    created_by         text,
    deployed_at        timestamptz,
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ml_models_name_version_key UNIQUE (name, version)
);
CREATE INDEX ml_models_model_type_idx ON ml_models (model_type, created_at DESC);
CREATE INDEX ml_models_status_idx ON ml_models (status);
CREATE INDEX ml_models_parent_model_id_idx ON ml_models (parent_model_id) WHERE parent_model_id IS NOT NULL;
COMMENT ON TABLE ml_models IS 'Machine-learning models: one row per (name, version).';

CREATE TABLE training_datasets (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text        NOT NULL CHECK (name <> ''),
    version            text        NOT NULL DEFAULT 'v1' CHECK (version <> ''),
    description        text,
    dataset_type       text        NOT NULL DEFAULT 'training'
                                   CHECK (dataset_type IN ('training', 'validation', 'test', 'holdout', 'mixed')),
    source_type        text,
    source_query       text,
    storage_uri        text,
    row_count          bigint      CHECK (row_count >= 0),
    feature_count      integer     CHECK (feature_count >= 0),
    size_bytes         bigint      CHECK (size_bytes >= 0),
    schema_definition  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    quality_score      double precision CHECK (quality_score >= 0 AND quality_score <= 1),
    quality_report     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    data_start_at      timestamptz,
    data_end_at        timestamptz,
    status             text        NOT NULL DEFAULT 'ready'
                                   CHECK (status IN ('draft', 'validating', 'ready', 'invalid', 'archived')),
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT training_datasets_name_version_key UNIQUE (name, version),
    CONSTRAINT training_datasets_data_range_check
        CHECK (data_end_at IS NULL OR data_start_at IS NULL OR data_end_at >= data_start_at)
);
CREATE INDEX training_datasets_created_at_idx ON training_datasets (created_at);
COMMENT ON TABLE training_datasets IS 'Datasets used to train and evaluate models, with quality tracking.';

CREATE TABLE model_training_sessions (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id           uuid        NOT NULL REFERENCES ml_models (id) ON DELETE CASCADE,
    dataset_id         uuid        REFERENCES training_datasets (id) ON DELETE SET NULL,
    status             text        NOT NULL DEFAULT 'pending'
                                   CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    total_epochs       integer     CHECK (total_epochs > 0),
    completed_epochs   integer     NOT NULL DEFAULT 0 CHECK (completed_epochs >= 0),
    best_epoch         integer     CHECK (best_epoch >= 0),
    training_loss      double precision CHECK (training_loss > '-Infinity' AND training_loss < 'Infinity'),
    validation_loss    double precision CHECK (validation_loss > '-Infinity' AND validation_loss < 'Infinity'),
    learning_curve     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    hyperparameters    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    compute_resources  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    compute_cost_usd   numeric(14, 4) CHECK (compute_cost_usd >= 0 AND compute_cost_usd < 'Infinity'),
    error_message      text,
    started_at         timestamptz,
    completed_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_training_sessions_epochs_check
        CHECK (total_epochs IS NULL OR completed_epochs <= total_epochs),
    CONSTRAINT model_training_sessions_time_check
        CHECK (completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at)
);
CREATE INDEX model_training_sessions_model_id_idx ON model_training_sessions (model_id, created_at DESC);
CREATE INDEX model_training_sessions_dataset_id_idx ON model_training_sessions (dataset_id);
CREATE INDEX model_training_sessions_status_idx ON model_training_sessions (status) WHERE status IN ('pending', 'running');
COMMENT ON TABLE model_training_sessions IS 'Training runs of a model on a dataset (progress, losses, cost).';

CREATE TABLE model_evaluations (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    model_id            uuid        NOT NULL REFERENCES ml_models (id) ON DELETE CASCADE,
    dataset_id          uuid        REFERENCES training_datasets (id) ON DELETE SET NULL,
    training_session_id uuid        REFERENCES model_training_sessions (id) ON DELETE SET NULL,
    evaluation_type     text        NOT NULL DEFAULT 'offline'
                                    CHECK (evaluation_type IN ('offline', 'online', 'shadow', 'cross_validation', 'backtest')),
    metric_name         text        NOT NULL CHECK (metric_name <> ''),
    metric_value        double precision NOT NULL
                                    CHECK (metric_value <> 'NaN' AND metric_value <> 'Infinity' AND metric_value <> '-Infinity'),
    is_baseline         boolean     NOT NULL DEFAULT false,
    sample_size         bigint      CHECK (sample_size >= 0),
    details             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    evaluated_at        timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_evaluations_model_metric_idx ON model_evaluations (model_id, metric_name, evaluated_at DESC);
CREATE INDEX model_evaluations_baseline_idx ON model_evaluations (model_id, metric_name) WHERE is_baseline;
CREATE INDEX model_evaluations_dataset_id_idx ON model_evaluations (dataset_id);
CREATE INDEX model_evaluations_training_session_id_idx ON model_evaluations (training_session_id);
CREATE INDEX model_evaluations_evaluated_at_idx ON model_evaluations (evaluated_at);
COMMENT ON TABLE model_evaluations IS 'One metric value of one model evaluation; is_baseline marks the reference value (health: accuracy drop > 20% from baseline).';

CREATE TABLE feature_store (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    feature_group  text        NOT NULL CHECK (feature_group <> ''),
    feature_name   text        NOT NULL CHECK (feature_name <> ''),
    entity_type    text        NOT NULL CHECK (entity_type <> ''),
    entity_id      text        NOT NULL,
    feature_value  jsonb       NOT NULL,
    value_type     text        NOT NULL DEFAULT 'numeric'
                               CHECK (value_type IN ('numeric', 'categorical', 'boolean', 'text', 'vector', 'json')),
    version        integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    source         text,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    valid_from     timestamptz NOT NULL DEFAULT now(),
    valid_to       timestamptz,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feature_store_key UNIQUE (feature_group, feature_name, entity_type, entity_id, version),
    CONSTRAINT feature_store_validity_check CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX feature_store_entity_idx ON feature_store (entity_type, entity_id);
CREATE INDEX feature_store_computed_at_idx ON feature_store (computed_at);
COMMENT ON TABLE feature_store IS 'Engineered feature values per entity, versioned.';

-- Materialise the owner's default ACL (privileges unchanged). A REVOKE never resets an ACL to NULL,
-- so without this 0009's GRANT + REVOKE would leave these objects with an explicit ACL and a
-- rollback past 0009 would not restore this step's catalog exactly.
GRANT ALL ON TABLE ml_models, training_datasets, model_training_sessions, model_evaluations, feature_store TO CURRENT_USER;
