-- 0005: analytics and performance (seed 04_analytics_performance).
-- learning_events and system_performance_metrics are RANGE-partitioned by month on their time
-- column. Partition naming convention (shared with flows/partitions): <parent>_pYYYYMMDD, named after
-- the partition's lower bound (UTC midnight of the 1st), bounds half-open [start, next start).
-- Each has a DEFAULT partition <parent>_default catching rows outside the created range; the
-- partitions job moves them into proper partitions.

CREATE TABLE learning_events (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    occurred_at  timestamptz NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    event_type   text        NOT NULL CHECK (event_type <> ''),
    source       text,
    session_id   uuid,
    user_id      text,
    model_id     uuid,       -- deliberately no FK: events outlive models and partitions are dropped by retention
    payload      jsonb       DEFAULT '{}'::jsonb,
    CONSTRAINT learning_events_pkey PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX learning_events_occurred_at_idx ON learning_events (occurred_at);
CREATE INDEX learning_events_type_occurred_idx ON learning_events (event_type, occurred_at);
CREATE INDEX learning_events_session_idx ON learning_events (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX learning_events_model_idx ON learning_events (model_id, occurred_at) WHERE model_id IS NOT NULL;
COMMENT ON TABLE learning_events IS 'Time-series learning events, monthly partitions <parent>_pYYYYMMDD + learning_events_default. Lag = ingested_at - occurred_at.';

CREATE TABLE system_performance_metrics (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    recorded_at  timestamptz NOT NULL,
    metric_name  text        NOT NULL CHECK (metric_name <> ''),
    component    text,
    host         text,
    value        double precision NOT NULL CHECK (value > '-Infinity' AND value < 'Infinity'),
    unit         text,
    tags         jsonb       DEFAULT '{}'::jsonb,
    CONSTRAINT system_performance_metrics_pkey PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE INDEX system_performance_metrics_recorded_at_idx ON system_performance_metrics (recorded_at);
CREATE INDEX system_performance_metrics_name_recorded_idx ON system_performance_metrics (metric_name, recorded_at);
CREATE INDEX system_performance_metrics_component_recorded_idx ON system_performance_metrics (component, recorded_at);
COMMENT ON TABLE system_performance_metrics IS 'High-frequency performance samples, monthly partitions <parent>_pYYYYMMDD + system_performance_metrics_default.';

CREATE TABLE learning_events_default PARTITION OF learning_events DEFAULT;
CREATE TABLE system_performance_metrics_default PARTITION OF system_performance_metrics DEFAULT;

-- Monthly partitions from 3 months before the current (UTC) month through 2 months after it.
DO $partitions$
DECLARE
    base   date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    parent text;
    m      integer;
    lo     date;
    hi     date;
BEGIN
    FOREACH parent IN ARRAY ARRAY['learning_events', 'system_performance_metrics'] LOOP
        FOR m IN -3..2 LOOP
            lo := (base + make_interval(months => m))::date;
            hi := (base + make_interval(months => m + 1))::date;
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                parent || '_p' || to_char(lo, 'YYYYMMDD'),
                parent,
                to_char(lo, 'YYYY-MM-DD') || ' 00:00:00+00',
                to_char(hi, 'YYYY-MM-DD') || ' 00:00:00+00');
            -- explicit owner ACL, see the GRANT ... TO CURRENT_USER at the end of this file
            EXECUTE format('GRANT ALL ON TABLE %I TO CURRENT_USER', parent || '_p' || to_char(lo, 'YYYYMMDD'));
        END LOOP;
    END LOOP;
END
$partitions$;

CREATE TABLE query_performance_logs (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    logged_at          timestamptz NOT NULL DEFAULT now(),
    query_fingerprint  text        NOT NULL CHECK (query_fingerprint <> ''),
    query_text         text,
    database_name      text,
    user_name          text,
    application_name   text,
    execution_ms       double precision NOT NULL CHECK (execution_ms >= 0 AND execution_ms < 'Infinity'),
    planning_ms        double precision CHECK (planning_ms >= 0 AND planning_ms < 'Infinity'),
    rows_returned      bigint      CHECK (rows_returned >= 0),
    calls              bigint      NOT NULL DEFAULT 1 CHECK (calls > 0),
    shared_blks_hit    bigint      CHECK (shared_blks_hit >= 0),
    shared_blks_read   bigint      CHECK (shared_blks_read >= 0),
    baseline_ms        double precision CHECK (baseline_ms >= 0 AND baseline_ms < 'Infinity'),
    plan               jsonb,
    source             text        NOT NULL DEFAULT 'application',
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX query_performance_logs_logged_at_idx ON query_performance_logs (logged_at);
CREATE INDEX query_performance_logs_fingerprint_idx ON query_performance_logs (query_fingerprint, logged_at DESC);
COMMENT ON TABLE query_performance_logs IS 'Query timings; health flags execution_ms > 2 x baseline_ms.';

CREATE TABLE resource_utilization (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    measured_at      timestamptz NOT NULL DEFAULT now(),
    resource_type    text        NOT NULL
                                 CHECK (resource_type IN ('cpu', 'memory', 'disk', 'connections', 'io', 'network')),
    resource_name    text        NOT NULL CHECK (resource_name <> ''),
    host             text,
    utilization_pct  double precision CHECK (utilization_pct >= 0 AND utilization_pct <= 100),
    capacity         double precision CHECK (capacity >= 0 AND capacity < 'Infinity'),
    used             double precision CHECK (used >= 0 AND used < 'Infinity'),
    unit             text,
    metadata         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX resource_utilization_type_name_idx ON resource_utilization (resource_type, resource_name, measured_at DESC);
CREATE INDEX resource_utilization_measured_at_idx ON resource_utilization (measured_at);
COMMENT ON TABLE resource_utilization IS 'Resource usage samples; health flags utilization_pct > 85.';

CREATE TABLE capacity_planning_metrics (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    metric_name         text        NOT NULL CHECK (metric_name <> ''),
    resource_type       text        NOT NULL CHECK (resource_type <> ''),
    resource_name       text        NOT NULL CHECK (resource_name <> ''),
    measured_at         timestamptz NOT NULL,
    value               double precision NOT NULL CHECK (value > '-Infinity' AND value < 'Infinity'),
    unit                text,
    projection_horizon  interval,
    threshold           double precision,
    projected_at        timestamptz,
    metadata            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    flow_run_id         uuid,
    operation_id        uuid,       -- pgtender_operations.operation_id, no FK: the ledger is pruned by retention
    CONSTRAINT capacity_planning_metrics_key UNIQUE (metric_name, resource_name, measured_at)
);
CREATE INDEX capacity_planning_metrics_resource_idx ON capacity_planning_metrics (resource_name, metric_name, measured_at DESC);
CREATE INDEX capacity_planning_metrics_measured_at_idx ON capacity_planning_metrics (measured_at);
COMMENT ON TABLE capacity_planning_metrics IS 'One row per (metric, resource, measured_at); projections carry horizon and threshold.';

-- Materialise the owner's default ACL (privileges unchanged). A REVOKE never resets an ACL to NULL,
-- so without this 0009's GRANT + REVOKE would leave these objects with an explicit ACL and a
-- rollback past 0009 would not restore this step's catalog exactly.
GRANT ALL ON TABLE learning_events, learning_events_default, system_performance_metrics, system_performance_metrics_default, query_performance_logs, resource_utilization, capacity_planning_metrics TO CURRENT_USER;
