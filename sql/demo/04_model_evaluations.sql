-- One baseline per (model, metric) before the window, then one evaluation per day.
-- bug_likelihood_predictor's accuracy degrades over the last 3 days to 0.70 x baseline (alert: drop of more than 20 percent).
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days),
     m AS (SELECT x.id, x.name, row_number() OVER (ORDER BY x.name)::int AS rn,
                  (SELECT s.id FROM model_training_sessions s
                    WHERE s.model_id = x.id AND s.status = 'completed'
                    ORDER BY s.created_at LIMIT 1) AS session_id
             FROM ml_models x),
     ds AS (SELECT d.id FROM training_datasets d WHERE d.name = 'code_history_holdout'),
     metric AS (SELECT * FROM (VALUES ('accuracy', 1), ('precision', 2), ('recall', 3), ('f1', 4)) AS t(metric_name, mn)),
     base AS (SELECT m.id AS model_id, m.name, m.session_id, metric.metric_name,
                     round((0.80 + mod(m.rn * 7 + metric.mn * 3, 15) / 100.0)::numeric, 4)::double precision AS baseline
                FROM m CROSS JOIN metric)
INSERT INTO model_evaluations (model_id, dataset_id, training_session_id, evaluation_type, metric_name,
                               metric_value, is_baseline, sample_size, details, evaluated_at, created_at)
SELECT b.model_id, (SELECT id FROM ds), b.session_id, 'offline', b.metric_name, b.baseline, true, 150000,
       jsonb_build_object('note', 'baseline at deployment'),
       p.ts - make_interval(days => p.days + 1), p.ts - make_interval(days => p.days + 1)
  FROM base b CROSS JOIN p
UNION ALL
SELECT b.model_id, (SELECT id FROM ds), b.session_id,
       CASE WHEN mod(d, 2) = 0 THEN 'online' ELSE 'offline' END,
       b.metric_name,
       CASE WHEN b.name = 'bug_likelihood_predictor' AND b.metric_name = 'accuracy' AND d < 3
            THEN round((b.baseline * (0.70 + 0.05 * d))::numeric, 4)::double precision
            ELSE least(1.0, round((b.baseline * (0.985 + random() * 0.03))::numeric, 4))::double precision END,
       false, 5000 + floor(random() * 5000)::bigint, '{}'::jsonb,
       p.ts - make_interval(days => d, mins => 30), p.ts - make_interval(days => d, mins => 30)
  FROM base b CROSS JOIN p CROSS JOIN generate_series(0, p.days - 1) AS d
