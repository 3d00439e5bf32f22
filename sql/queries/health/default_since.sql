-- Since when the DEFAULT partition of each of %(tables)s has held rows, by this probe's own history:
-- the first health window after the last one that found it empty (a table never seen empty: its
-- first window with rows). Windows whose probe failed (no row count) neither start nor end it.
SELECT d.target, min(d.window_start) AS since
  FROM data_quality_checks d
 WHERE d.is_current
   AND d.check_name = 'health.default_partition_rows'
   AND d.target = ANY(%(tables)s)
   AND d.window_start <= %(now)s
   AND (d.observed_value ->> 'rows')::bigint > 0
   AND d.window_start > coalesce(
           (SELECT max(e.window_start)
              FROM data_quality_checks e
             WHERE e.is_current
               AND e.check_name = d.check_name
               AND e.target = d.target
               AND e.window_start <= %(now)s
               AND (e.observed_value ->> 'rows')::bigint = 0),
           '-infinity')
 GROUP BY d.target
