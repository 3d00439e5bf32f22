-- 0006: integration with the existing git/user systems and data-quality results
-- (seed 05_integration_migration; schema_migrations already exists since 0001).
-- The *_learning_events tables hold the existing systems' records; migrate_existing_data() (0008)
-- mirrors each row into learning_events and links it back through (learning_event_id,
-- learning_event_at). That link has no FK on purpose: learning_events partitions are detached
-- and dropped by retention, which a referencing FK would block.

CREATE TABLE git_operation_learning_events (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    repository         text        NOT NULL CHECK (repository <> ''),
    branch             text,
    operation          text        NOT NULL
                                   CHECK (operation IN ('commit', 'push', 'pull', 'merge', 'rebase', 'checkout',
                                                        'clone', 'fetch', 'tag', 'revert', 'cherry_pick', 'stash')),
    commit_sha         text        CHECK (commit_sha ~ '^[0-9a-f]{7,64}$'),
    parent_shas        text[],
    author             text,
    message            text,
    files_changed      integer     CHECK (files_changed >= 0),
    lines_added        integer     CHECK (lines_added >= 0),
    lines_deleted      integer     CHECK (lines_deleted >= 0),
    duration_ms        double precision CHECK (duration_ms >= 0 AND duration_ms < 'Infinity'),
    success            boolean     NOT NULL DEFAULT true,
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at        timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    learning_event_id  uuid,
    learning_event_at  timestamptz,
    CONSTRAINT git_operation_learning_events_link_check
        CHECK ((learning_event_id IS NULL) = (learning_event_at IS NULL))
    -- No UNIQUE (repository, commit_sha, operation): hooks may re-deliver; duplicates are a quality finding.
);
CREATE INDEX git_operation_learning_events_occurred_at_idx ON git_operation_learning_events (occurred_at);
CREATE INDEX git_operation_learning_events_repo_idx ON git_operation_learning_events (repository, occurred_at DESC);
CREATE INDEX git_operation_learning_events_commit_idx ON git_operation_learning_events (commit_sha);
CREATE INDEX git_operation_learning_events_unlinked_idx ON git_operation_learning_events (occurred_at) WHERE learning_event_id IS NULL;
COMMENT ON TABLE git_operation_learning_events IS 'Git operations from the existing system; mirrored into learning_events.';

CREATE TABLE user_session_learning_events (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id          uuid        NOT NULL,
    user_id             text        NOT NULL CHECK (user_id <> ''),
    session_start       timestamptz NOT NULL,
    session_end         timestamptz,
    duration_seconds    double precision CHECK (duration_seconds >= 0 AND duration_seconds < 'Infinity'),
    actions_count       integer     NOT NULL DEFAULT 0 CHECK (actions_count >= 0),
    actions             jsonb       NOT NULL DEFAULT '[]'::jsonb,
    features_used       text[],
    client              text,
    outcome             text        CHECK (outcome IN ('completed', 'abandoned', 'error', 'timeout')),
    satisfaction_score  double precision CHECK (satisfaction_score >= 0 AND satisfaction_score <= 1),
    metadata            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    learning_event_id   uuid,
    learning_event_at   timestamptz,
    CONSTRAINT user_session_learning_events_time_check CHECK (session_end IS NULL OR session_end >= session_start),
    CONSTRAINT user_session_learning_events_link_check
        CHECK ((learning_event_id IS NULL) = (learning_event_at IS NULL))
);
CREATE INDEX user_session_learning_events_session_idx ON user_session_learning_events (session_id);
CREATE INDEX user_session_learning_events_user_idx ON user_session_learning_events (user_id, session_start DESC);
CREATE INDEX user_session_learning_events_start_idx ON user_session_learning_events (session_start);
CREATE INDEX user_session_learning_events_unlinked_idx ON user_session_learning_events (session_start) WHERE learning_event_id IS NULL;
COMMENT ON TABLE user_session_learning_events IS 'User sessions from the existing system; mirrored into learning_events.';

CREATE TABLE data_quality_checks (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    check_name          text        NOT NULL CHECK (check_name <> ''),
    suite               text,
    target              text        NOT NULL CHECK (target <> ''),
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    status              text        NOT NULL
                                    CHECK (status IN ('passed', 'warning', 'failed', 'error', 'skipped')),
    observed_value      jsonb,
    expected            jsonb,
    threshold           double precision,
    score               double precision CHECK (score >= 0 AND score <= 100),
    unexpected_count    bigint      CHECK (unexpected_count >= 0),
    unexpected_percent  double precision CHECK (unexpected_percent >= 0 AND unexpected_percent <= 100),
    sample              jsonb,
    details             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    checked_at          timestamptz NOT NULL DEFAULT now(),
    flow_run_id         uuid,
    is_current          boolean     NOT NULL DEFAULT true,
    CONSTRAINT data_quality_checks_window_check CHECK (window_end >= window_start)
);
-- One current result per (check, target, window); superseded attempts keep is_current = false.
CREATE UNIQUE INDEX data_quality_checks_current_key
    ON data_quality_checks (check_name, target, window_start, window_end) WHERE is_current;
CREATE INDEX data_quality_checks_checked_at_idx ON data_quality_checks (checked_at);
CREATE INDEX data_quality_checks_status_idx ON data_quality_checks (status, checked_at DESC) WHERE is_current;
COMMENT ON TABLE data_quality_checks IS 'Data-quality and health check results; one current row per (check, target, window).';

-- Materialise the owner's default ACL (privileges unchanged). A REVOKE never resets an ACL to NULL,
-- so without this 0009's GRANT + REVOKE would leave these objects with an explicit ACL and a
-- rollback past 0009 would not restore this step's catalog exactly.
GRANT ALL ON TABLE git_operation_learning_events, user_session_learning_events, data_quality_checks TO CURRENT_USER;
