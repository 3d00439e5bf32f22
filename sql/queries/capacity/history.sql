-- Recorded sizes and row counts of tables and the database, for growth fits.
SELECT metric_name, resource_type, resource_name, measured_at, value
  FROM capacity_planning_metrics
 WHERE metric_name = ANY(%(metrics)s)
   AND resource_type = ANY(%(resource_types)s)
   AND measured_at > %(since)s AND measured_at <= %(now)s
 ORDER BY metric_name, resource_name, measured_at
