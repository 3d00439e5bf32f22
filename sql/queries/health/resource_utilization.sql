-- The latest sample of each resource within the lookback window.
SELECT DISTINCT ON (resource_type, resource_name, coalesce(host, ''))
       resource_type, resource_name, host, utilization_pct, measured_at
  FROM resource_utilization
 WHERE measured_at > %(now)s - %(lookback)s AND measured_at <= %(now)s
   AND utilization_pct IS NOT NULL
 ORDER BY resource_type, resource_name, coalesce(host, ''), measured_at DESC
