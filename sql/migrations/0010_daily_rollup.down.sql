-- Back to 0007's materialized view (recomputed from learning_events, with its unique index).
DROP VIEW mv_daily_learning_events;
CREATE MATERIALIZED VIEW mv_daily_learning_events AS
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
CREATE UNIQUE INDEX mv_daily_learning_events_key ON mv_daily_learning_events (day, event_type);
DROP FUNCTION refresh_learning_events_daily(date, date);
DROP TABLE learning_events_daily;
