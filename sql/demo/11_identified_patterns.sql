-- 13 rows: 12 distinct patterns plus a second ('code_smell', 'god_class') row, a duplicated
-- business key that no constraint forbids. occurrence_count/last_detected_at are left for
-- migrate_existing_data() to derive.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days)
INSERT INTO identified_patterns (pattern_type, pattern_name, description, pattern_signature, confidence_score,
                                 severity, status, first_detected_at, detected_by_model_id, metadata,
                                 created_at, updated_at)
SELECT v.ptype, v.pname, v.descr, jsonb_build_object('rule', v.pname), v.conf, v.severity, 'active',
       p.ts - make_interval(days => p.days + v.ord),
       (SELECT m.id FROM ml_models m WHERE m.name = v.model_name),
       jsonb_build_object('ordinal', v.ord),
       p.ts - make_interval(days => p.days + v.ord), p.ts - make_interval(days => p.days + v.ord)
  FROM p
 CROSS JOIN (VALUES
    (1, 'code_smell', 'long_method', 'Method longer than 80 lines', 0.95::double precision, 'medium', 'code_smell_detector'),
    (2, 'code_smell', 'god_class', 'Class with too many responsibilities', 0.88, 'high', 'code_smell_detector'),
    (3, 'code_smell', 'duplicate_code', 'Near-identical blocks', 0.91, 'medium', 'code_smell_detector'),
    (4, 'bug_pattern', 'null_dereference', 'Possible None access', 0.82, 'high', 'bug_likelihood_predictor'),
    (5, 'bug_pattern', 'resource_leak', 'File or connection not closed', 0.79, 'high', 'bug_likelihood_predictor'),
    (6, 'performance', 'n_plus_one_query', 'Query inside a loop', 0.86, 'critical', 'pattern_classifier'),
    (7, 'performance', 'missing_index', 'Sequential scan on a large table', 0.74, 'high', 'query_latency_forecaster'),
    (8, 'usage', 'feature_abandonment', 'Users leave a flow midway', 0.67, 'low', 'session_anomaly_detector'),
    (9, 'usage', 'repeated_undo', 'Users undo the same action repeatedly', 0.71, 'low', 'session_anomaly_detector'),
    (10, 'security', 'hardcoded_secret', 'Credential literal in source', 0.97, 'critical', 'pattern_classifier'),
    (11, 'architecture', 'cyclic_dependency', 'Import cycle between modules', 0.9, 'medium', 'pattern_classifier'),
    (12, 'architecture', 'layer_violation', 'Core imports a flow', 0.84, 'medium', 'pattern_classifier'),
    (13, 'code_smell', 'god_class', 'Class with too many responsibilities (re-registered)', 0.86, 'high', 'code_smell_detector')
 ) AS v(ord, ptype, pname, descr, conf, severity, model_name)
 ORDER BY v.ord
