-- The newest growth and projection rows (capacity flow) of every table and the database before %(end)s.
SELECT DISTINCT ON (metric_name, resource_name)
       metric_name, resource_type, resource_name, measured_at, value, threshold, projected_at,
       projection_horizon
  FROM capacity_planning_metrics
 WHERE metric_name IN ('total_bytes_growth_per_day', 'total_bytes_projected')
   AND resource_type IN ('table', 'database')
   AND measured_at >= %(since)s
   AND measured_at <= %(end)s  -- a backfilled Sunday is measured at its end, Monday 00:00
 ORDER BY metric_name, resource_name, measured_at DESC
