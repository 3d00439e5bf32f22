-- The baseline bench/health.py --views compares the views job with: mv_daily_learning_events as
-- migration 0007 defined it, a materialized view recomputed from every learning event.
CREATE MATERIALIZED VIEW IF NOT EXISTS bench_full_history_daily AS
SELECT (e.occurred_at AT TIME ZONE 'UTC')::date                                   AS day,
       e.event_type                                                               AS event_type,
       count(*)::bigint                                                           AS event_count,
       count(DISTINCT e.session_id)::bigint                                       AS distinct_sessions,
       count(DISTINCT e.user_id)::bigint                                          AS distinct_users,
       count(*) FILTER (WHERE e.session_id IS NULL)::bigint                       AS events_without_session,
       avg(EXTRACT(EPOCH FROM (e.ingested_at - e.occurred_at)))::double precision AS avg_lag_seconds,
       max(EXTRACT(EPOCH FROM (e.ingested_at - e.occurred_at)))::double precision AS max_lag_seconds,
       min(e.occurred_at)                                                         AS first_event_at,
       max(e.occurred_at)                                                         AS last_event_at
  FROM learning_events e
 GROUP BY 1, 2
WITH DATA;
CREATE UNIQUE INDEX IF NOT EXISTS bench_full_history_daily_key ON bench_full_history_daily (day, event_type);
