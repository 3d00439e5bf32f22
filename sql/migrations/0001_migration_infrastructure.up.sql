-- 0001: migration bookkeeping and pgtender's operation ledger.
-- The migrator records every applied step here; rollback_schema_version() (0008) replays down_sql.
CREATE TABLE schema_migrations (
    version       integer PRIMARY KEY CHECK (version > 0),
    name          text        NOT NULL,
    description   text,
    checksum      text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    down_sql      text,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    applied_by    text        NOT NULL DEFAULT current_user,
    execution_ms  integer     CHECK (execution_ms >= 0)
);

COMMENT ON TABLE schema_migrations IS 'Versioned migrations applied by pgtender (one row a step, checksum of the up file).';

-- Operation ledger: every job run writes start, then complete or fail (seed: operation context).
CREATE TABLE pgtender_operations (
    operation_id  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    job           text        NOT NULL CHECK (job ~ '^[a-z][a-z0-9_-]*$'),
    status        text        NOT NULL DEFAULT 'started'
                              CHECK (status IN ('started', 'completed', 'failed', 'skipped')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    flow_run_id   uuid,
    params        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    counts        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error         text,
    host          text,
    pid           integer,
    CHECK (finished_at IS NULL OR finished_at >= started_at),
    CHECK ((status = 'started') = (finished_at IS NULL))
);

CREATE INDEX pgtender_operations_job_started_idx ON pgtender_operations (job, started_at DESC);
CREATE INDEX pgtender_operations_open_idx ON pgtender_operations (started_at) WHERE status = 'started';

COMMENT ON TABLE pgtender_operations IS 'pgtender operation ledger: start -> complete | fail, with counts and flow run id.';
