-- 0007: dashboard materialized views. Each has a UNIQUE index over plain columns covering every
-- row (required by REFRESH MATERIALIZED VIEW CONCURRENTLY); grouping keys are NOT NULL by
-- construction (source columns are NOT NULL or coalesced). Days are UTC calendar days.
-- No view depends on another, so any refresh order is valid.

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

CREATE MATERIALIZED VIEW mv_model_performance_trend AS
SELECT e.model_id                                   AS model_id,
       m.name                                       AS model_name,
       m.version                                    AS model_version,
       (e.evaluated_at AT TIME ZONE 'UTC')::date    AS day,
       e.metric_name                                AS metric_name,
       avg(e.metric_value)::double precision        AS avg_value,
       min(e.metric_value)                          AS min_value,
       max(e.metric_value)                          AS max_value,
       count(*)::bigint                             AS evaluation_count,
       avg(e.metric_value) FILTER (WHERE e.is_baseline)::double precision AS baseline_value
  FROM model_evaluations e
  JOIN ml_models m ON m.id = e.model_id
 GROUP BY e.model_id, m.name, m.version, (e.evaluated_at AT TIME ZONE 'UTC')::date, e.metric_name
WITH DATA;
CREATE UNIQUE INDEX mv_model_performance_trend_key ON mv_model_performance_trend (model_id, metric_name, day);

CREATE MATERIALIZED VIEW mv_pattern_trend AS
SELECT p.pattern_type                                               AS pattern_type,
       (o.detected_at AT TIME ZONE 'UTC')::date                     AS day,
       count(*)::bigint                                             AS occurrence_count,
       count(DISTINCT o.pattern_id)::bigint                         AS distinct_patterns,
       count(DISTINCT (o.source_type, o.source_id))::bigint         AS distinct_sources,
       avg(COALESCE(o.confidence, p.confidence_score))::double precision AS avg_confidence
  FROM pattern_occurrences o
  JOIN identified_patterns p ON p.id = o.pattern_id
 GROUP BY 1, 2
WITH DATA;
CREATE UNIQUE INDEX mv_pattern_trend_key ON mv_pattern_trend (pattern_type, day);

CREATE MATERIALIZED VIEW mv_llm_usage_daily AS
SELECT (l.created_at AT TIME ZONE 'UTC')::date              AS day,
       l.model_name                                         AS model_name,
       count(*)::bigint                                     AS interactions,
       count(*) FILTER (WHERE l.status <> 'success')::bigint AS failed_interactions,
       sum(l.prompt_tokens)::bigint                         AS prompt_tokens,
       sum(l.completion_tokens)::bigint                     AS completion_tokens,
       sum(l.cost_usd)                                      AS cost_usd,
       avg(l.latency_ms)::double precision                  AS avg_latency_ms
  FROM llm_interactions l
 GROUP BY 1, 2
WITH DATA;
CREATE UNIQUE INDEX mv_llm_usage_daily_key ON mv_llm_usage_daily (day, model_name);

-- Materialise the owner's default ACL (privileges unchanged). A REVOKE never resets an ACL to NULL,
-- so without this 0009's GRANT + REVOKE would leave these objects with an explicit ACL and a
-- rollback past 0009 would not restore this step's catalog exactly.
GRANT ALL ON TABLE mv_daily_learning_events, mv_model_performance_trend, mv_pattern_trend, mv_llm_usage_daily TO CURRENT_USER;
