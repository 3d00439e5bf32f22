-- 0010: mv_daily_learning_events becomes incremental.
-- As a materialized view it was recomputed from every learning event on each refresh: a full scan
-- and sort of the whole history every 15 minutes (34 s and a 10x writer slowdown at 30M events,
-- bench/health.py). Closed days do not change, so the aggregate now lives in a rollup table,
-- learning_events_daily, that refresh_learning_events_daily(from_day, to_day) recomputes for a
-- range of UTC days (and that keeps the days retention has dropped the raw events of); the views job calls it for the trailing views.rollup_days days and backfill
-- for the days it re-runs. mv_daily_learning_events stays, same columns, as a plain view over the
-- rollup, so dashboards keep reading it.

CREATE TABLE learning_events_daily (
    day                     date             NOT NULL,
    event_type              text             NOT NULL,
    event_count             bigint           NOT NULL,
    distinct_sessions       bigint           NOT NULL,
    distinct_users          bigint           NOT NULL,
    events_without_session  bigint           NOT NULL,
    avg_lag_seconds         double precision,
    max_lag_seconds         double precision,
    first_event_at          timestamptz      NOT NULL,
    last_event_at           timestamptz      NOT NULL,
    refreshed_at            timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (day, event_type)
);
COMMENT ON TABLE learning_events_daily IS
    'Daily rollup of learning_events per UTC day and event type; maintained by refresh_learning_events_daily().';

-- Recompute the rollup rows of the UTC days from_day..to_day (inclusive) from learning_events, in
-- the caller's transaction: readers see the old rows until it commits, never a half-written day.
-- The occurred_at range prunes partitions and uses learning_events_occurred_at_idx. A day is
-- replaced only when it still has events: the rows of a day whose raw events are gone (dropped by
-- retention) are kept, so recomputing an old range can never erase aggregates that cannot be
-- rebuilt. Within a day that has events, an event type that no longer occurs loses its row. A
-- transaction-level advisory lock serializes overlapping calls. Returns the rows written.
CREATE FUNCTION refresh_learning_events_daily(from_day date, to_day date)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $fn$
DECLARE
    written bigint;
    stamp   timestamptz := clock_timestamp();  -- marks the rows this call writes
BEGIN
    IF from_day IS NULL OR to_day IS NULL OR from_day > to_day THEN
        RAISE EXCEPTION 'refresh_learning_events_daily: invalid day range % .. %', from_day, to_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pgtender.rollup'), hashtext('learning_events_daily'));
    INSERT INTO learning_events_daily AS d
           (day, event_type, event_count, distinct_sessions, distinct_users, events_without_session,
            avg_lag_seconds, max_lag_seconds, first_event_at, last_event_at, refreshed_at)
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date,
           e.event_type,
           count(*),
           count(DISTINCT e.session_id),
           count(DISTINCT e.user_id),
           count(*) FILTER (WHERE e.session_id IS NULL),
           avg(EXTRACT(EPOCH FROM (e.ingested_at - e.occurred_at)))::double precision,
           max(EXTRACT(EPOCH FROM (e.ingested_at - e.occurred_at)))::double precision,
           min(e.occurred_at),
           max(e.occurred_at),
           stamp
      FROM learning_events e
     WHERE e.occurred_at >= (from_day::timestamp AT TIME ZONE 'UTC')
       AND e.occurred_at <  ((to_day + 1)::timestamp AT TIME ZONE 'UTC')
     GROUP BY 1, 2
    ON CONFLICT (day, event_type) DO UPDATE
       SET event_count = EXCLUDED.event_count,
           distinct_sessions = EXCLUDED.distinct_sessions,
           distinct_users = EXCLUDED.distinct_users,
           events_without_session = EXCLUDED.events_without_session,
           avg_lag_seconds = EXCLUDED.avg_lag_seconds,
           max_lag_seconds = EXCLUDED.max_lag_seconds,
           first_event_at = EXCLUDED.first_event_at,
           last_event_at = EXCLUDED.last_event_at,
           refreshed_at = EXCLUDED.refreshed_at;
    GET DIAGNOSTICS written = ROW_COUNT;
    -- Event types that vanished from a day this call rewrote: its rows this call did not write.
    DELETE FROM learning_events_daily d
     WHERE d.day BETWEEN from_day AND to_day
       AND d.refreshed_at <> stamp
       AND EXISTS (SELECT 1 FROM learning_events_daily f WHERE f.day = d.day AND f.refreshed_at = stamp);
    RETURN written;
END
$fn$;
COMMENT ON FUNCTION refresh_learning_events_daily(date, date) IS
    'Recompute learning_events_daily for the UTC days from_day..to_day; returns rows written.';

-- The whole history once (min/max come from the occurred_at index).
SELECT refresh_learning_events_daily((min(occurred_at) AT TIME ZONE 'UTC')::date,
                                     (max(occurred_at) AT TIME ZONE 'UTC')::date)
  FROM learning_events
HAVING min(occurred_at) IS NOT NULL;

DROP MATERIALIZED VIEW mv_daily_learning_events;
CREATE VIEW mv_daily_learning_events AS
SELECT day, event_type, event_count, distinct_sessions, distinct_users, events_without_session,
       avg_lag_seconds, max_lag_seconds, first_event_at, last_event_at
  FROM learning_events_daily;
COMMENT ON VIEW mv_daily_learning_events IS
    'Daily learning-event aggregate (a view over learning_events_daily since 0010; the name is kept for dashboards).';
