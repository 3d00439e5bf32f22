WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days)
INSERT INTO ab_testing_experiments (name, description, hypothesis, control_model_id, treatment_model_id, variants,
                                    traffic_split, primary_metric, secondary_metrics, target_sample_size,
                                    control_sample_size, treatment_sample_size, control_metric_value,
                                    treatment_metric_value, effect_size, p_value, confidence_level, status, winner,
                                    started_at, ended_at, results, created_at, updated_at)
SELECT v.name, v.description, v.hypothesis,
       (SELECT m.id FROM ml_models m WHERE m.name = v.control),
       (SELECT m.id FROM ml_models m WHERE m.name = v.treatment),
       jsonb_build_array('control', 'treatment'), '{"control": 0.5, "treatment": 0.5}'::jsonb,
       v.metric, ARRAY['latency_ms'], 20000, v.cn, v.tn, v.cv, v.tv, v.tv - v.cv, v.pval, 0.95, v.status, v.winner,
       p.ts - make_interval(days => v.days_ago),
       CASE WHEN v.status = 'completed' THEN p.ts - make_interval(days => v.days_ago - 5) END,
       '{}'::jsonb, p.ts - make_interval(days => v.days_ago), p.ts - make_interval(days => v.days_ago)
  FROM p
 CROSS JOIN (VALUES
    ('smell_detector_v2_vs_pattern_classifier', 'Detector comparison', 'v2.1 finds more true smells',
     'pattern_classifier', 'code_smell_detector', 'precision', 20000::bigint, 20000::bigint,
     0.81::double precision, 0.86::double precision, 0.003::double precision, 'completed', 'treatment', 20),
    ('recommender_ranking', 'Ranking objective', 'LambdaMART improves acceptance', 'refactoring_recommender',
     'refactoring_recommender', 'acceptance_rate', 12000, 11800, 0.22, 0.23, 0.21, 'running', NULL, 6),
    ('bug_predictor_threshold', 'Decision threshold 0.5 vs 0.6', 'Higher threshold reduces noise',
     'bug_likelihood_predictor', 'bug_likelihood_predictor', 'f1', 20000, 20000, 0.84, 0.84, 0.91,
     'completed', 'inconclusive', 30),
    ('anomaly_detector_rollout', 'Shadow rollout', 'No regression in latency', 'session_anomaly_detector',
     'session_anomaly_detector', 'latency_ms', 0, 0, NULL, NULL, NULL, 'draft', NULL, 1)
 ) AS v(name, description, hypothesis, control, treatment, metric, cn, tn, cv, tv, pval, status, winner, days_ago)
