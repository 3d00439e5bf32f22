-- When each view was last refreshed successfully by pgtender (its refresh-duration metric).
SELECT resource_name, max(measured_at)
  FROM capacity_planning_metrics
 WHERE metric_name = 'view_refresh_ms'
   AND resource_name = ANY(%(views)s)
 GROUP BY resource_name
