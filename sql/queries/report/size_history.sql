-- Total size (table + indexes + TOAST) of every table and of the database: last value of each UTC day.
SELECT DISTINCT ON (resource_name, day)
       resource_name, resource_type, (measured_at AT TIME ZONE 'UTC')::date AS day, value
  FROM capacity_planning_metrics
 WHERE metric_name = 'total_bytes'
   AND resource_type IN ('table', 'database')
   AND measured_at >= %(since)s
   AND measured_at <= %(end)s  -- a backfilled Sunday is measured at its end, Monday 00:00
 ORDER BY resource_name, day, measured_at DESC
