DROP MATERIALIZED VIEW mv_llm_usage_daily;
DROP MATERIALIZED VIEW mv_pattern_trend;
DROP MATERIALIZED VIEW mv_model_performance_trend;
DROP MATERIALIZED VIEW mv_daily_learning_events;
