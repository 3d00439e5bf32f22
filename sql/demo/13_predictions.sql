-- 500 predictions a day. Those older than a day are resolved (actual_value); every 4th resolved one
-- has is_correct NULL for migrate_existing_data() to derive from the labels.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days),
     m AS (SELECT array_agg(x.id ORDER BY x.name) AS ids FROM ml_models x),
     g AS (SELECT n, (n - 1) / 500 AS d, random() AS prob, random() AS noise, random() AS jitter
             FROM p CROSS JOIN generate_series(1, p.days * 500) AS n)
INSERT INTO predictions (model_id, prediction_type, target_entity_type, target_entity_id, input_features,
                         predicted_value, confidence, confidence_interval, actual_value, is_correct, feedback,
                         predicted_at, resolved_at, created_at)
SELECT m.ids[1 + mod(g.n, cardinality(m.ids))],
       'bug_likelihood', 'code_file', 'file' || (1 + mod(g.n * 31, 997)),
       jsonb_build_object('churn', mod(g.n, 50), 'complexity', mod(g.n * 7, 40)),
       jsonb_build_object('label', CASE WHEN g.prob >= 0.5 THEN 'bug' ELSE 'clean' END,
                          'probability', round(g.prob::numeric, 3)),
       round((0.5 + abs(g.prob - 0.5))::numeric, 3)::double precision,
       jsonb_build_object('lower', round(greatest(0, g.prob - 0.05)::numeric, 3),
                          'upper', round(least(1, g.prob + 0.05)::numeric, 3)),
       CASE WHEN g.d >= 1 THEN
            jsonb_build_object('label', CASE WHEN (g.prob >= 0.5) = (g.noise < 0.85) THEN 'bug' ELSE 'clean' END) END,
       CASE WHEN g.d >= 1 AND mod(g.n, 4) <> 0 THEN (g.noise < 0.85) END,
       NULL,
       t.predicted_at,
       CASE WHEN g.d >= 1 THEN t.predicted_at + interval '1 day' END,
       t.predicted_at
  FROM g
 CROSS JOIN p
 CROSS JOIN m
 CROSS JOIN LATERAL (SELECT date_trunc('day', p.ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                            - make_interval(days => g.d)
                            + least(interval '1 day', p.ts - (date_trunc('day', p.ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                                              - make_interval(days => g.d))) * g.jitter
                            AS predicted_at) t
 ORDER BY g.n
