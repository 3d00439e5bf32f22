-- Per model and metric: baseline (mean of is_baseline evaluations) and the latest non-baseline value.
SELECT m.name, m.version, b.metric_name, b.baseline, l.metric_value, l.evaluated_at
  FROM (SELECT model_id, metric_name, avg(metric_value) AS baseline
          FROM model_evaluations
         WHERE is_baseline AND metric_name = ANY(%(metrics)s)
         GROUP BY model_id, metric_name) b
  JOIN ml_models m ON m.id = b.model_id
  JOIN LATERAL (SELECT e.metric_value, e.evaluated_at
                  FROM model_evaluations e
                 WHERE e.model_id = b.model_id AND e.metric_name = b.metric_name
                   AND NOT e.is_baseline AND e.evaluated_at <= %(now)s
                 ORDER BY e.evaluated_at DESC
                 LIMIT 1) l ON true
 ORDER BY m.name, m.version, b.metric_name
