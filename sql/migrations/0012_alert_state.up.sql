-- 0012: pgtender's alert state: one row per (target, check, subject). A check that starts failing
-- pages once (paged_at), keeps quiet while it keeps failing (last_seen_at moves), and sends one
-- resolve when it clears (resolved_at). A page that could not be delivered (paged_at NULL) is
-- retried by the next evaluation; a check that clears before its page went out sends nothing.
CREATE TABLE pgtender_alert_state (
    target        text        NOT NULL,               -- the database pgtender tends ('default')
    check_name    text        NOT NULL,               -- e.g. health.partition_horizon, quality.learning_events
    subject       text        NOT NULL DEFAULT '',    -- what the check looked at (a table, a job), '' if one
    source        text        NOT NULL,               -- the job whose runs evaluate it (health, quality, job.<name>)
    state         text        NOT NULL CHECK (state IN ('failing', 'ok')),
    since         timestamptz NOT NULL,               -- when it entered this state
    last_seen_at  timestamptz NOT NULL,               -- the latest evaluation
    paged_at      timestamptz,                        -- the page of the current failing spell went out
    resolved_at   timestamptz,                        -- its resolve went out
    observed      jsonb,
    limit_value   text,
    summary       text,
    next_command  text,
    failures      integer     NOT NULL DEFAULT 0,     -- evaluations in the current failing spell
    PRIMARY KEY (target, check_name, subject)
);
CREATE INDEX pgtender_alert_state_failing ON pgtender_alert_state (target, source) WHERE state = 'failing';
COMMENT ON TABLE pgtender_alert_state IS
    'pgtender alerts: one page per (target, check, subject) when it starts failing, one resolve when it clears.';
