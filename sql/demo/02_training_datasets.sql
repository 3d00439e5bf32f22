INSERT INTO training_datasets (name, version, description, dataset_type, source_type, source_query,
                               storage_uri, row_count, feature_count, size_bytes, schema_definition,
                               quality_score, quality_report, data_start_at, data_end_at, status,
                               created_at, updated_at)
SELECT v.name, 'v1', v.description, v.dataset_type, 'warehouse', 'SELECT * FROM ' || v.name,
       's3://datasets/' || v.name || '/v1.parquet', v.row_count, v.feature_count, v.row_count * 180,
       jsonb_build_object('features', v.feature_count), v.quality,
       jsonb_build_object('null_ratio', round((1 - v.quality)::numeric, 3)),
       p.ts - make_interval(days => p.days + 180), p.ts - make_interval(days => p.days + 3), 'ready',
       p.ts - make_interval(days => p.days + 3), p.ts - make_interval(days => p.days + 3)
  FROM (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days) p
 CROSS JOIN (VALUES
    ('code_history_train', 'Commits, files and bug labels', 'training', 1200000::bigint, 48, 0.97::double precision),
    ('code_history_holdout', 'Held-out commits for evaluation', 'holdout', 150000, 48, 0.96),
    ('session_logs_train', 'User sessions with outcome labels', 'training', 800000, 22, 0.93),
    ('query_latency_history', 'Per-query latency time series', 'mixed', 5000000, 12, 0.99)
 ) AS v(name, description, dataset_type, row_count, feature_count, quality)
