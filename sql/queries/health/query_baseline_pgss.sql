-- Baseline of each statement: the median of the means recorded by earlier health runs.
SELECT resource_name, percentile_cont(0.5) WITHIN GROUP (ORDER BY value)
  FROM capacity_planning_metrics
 WHERE metric_name = 'health.query_mean_ms'
   AND measured_at >= %(now)s - %(baseline)s AND measured_at < %(now)s
   AND resource_name = ANY(%(ids)s)
 GROUP BY resource_name
