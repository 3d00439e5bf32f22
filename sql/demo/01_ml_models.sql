INSERT INTO ml_models (name, version, model_type, framework, description, status, hyperparameters,
                       feature_names, training_metrics, artifact_uri, model_size_bytes, created_by,
                       deployed_at, created_at, updated_at)
SELECT v.name, v.version, v.model_type, v.framework, v.description, 'deployed', v.hp::jsonb,
       v.features, '{}'::jsonb, 's3://models/' || v.name || '/' || v.version || '/model.bin',
       v.size_bytes, 'demo-data',
       p.ts - make_interval(days => p.days + 2), p.ts - make_interval(days => p.days + 5),
       p.ts - make_interval(days => p.days + 2)
  FROM (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days) p
 CROSS JOIN (VALUES
    ('pattern_classifier', 'v2.3', 'pattern_recognition', 'scikit-learn', 'Classifies code patterns',
     '{"n_estimators": 200, "max_depth": 12}', ARRAY['loc', 'complexity', 'churn'], 18500000::bigint),
    ('bug_likelihood_predictor', 'v3.0', 'classification', 'xgboost', 'Predicts bug likelihood of a file',
     '{"eta": 0.1, "max_depth": 8, "rounds": 400}', ARRAY['churn', 'authors', 'age_days', 'complexity'], 42000000),
    ('code_smell_detector', 'v2.1', 'classification', 'pytorch', 'Detects code smells in functions',
     '{"layers": 4, "hidden": 256, "dropout": 0.2}', ARRAY['ast_embedding'], 310000000),
    ('refactoring_recommender', 'v1.2', 'recommendation', 'lightgbm', 'Ranks refactoring suggestions',
     '{"num_leaves": 63, "learning_rate": 0.05}', ARRAY['smell_score', 'ownership', 'test_coverage'], 26000000),
    ('query_latency_forecaster', 'v0.9', 'forecasting', 'prophet', 'Forecasts query latency',
     '{"seasonality_mode": "multiplicative"}', ARRAY['hour', 'weekday', 'load'], 3000000),
    ('session_anomaly_detector', 'v1.0', 'anomaly_detection', 'scikit-learn', 'Isolation forest over sessions',
     '{"n_estimators": 150, "contamination": 0.01}', ARRAY['duration', 'actions', 'errors'], 9000000)
 ) AS v(name, version, model_type, framework, description, hp, features, size_bytes)
