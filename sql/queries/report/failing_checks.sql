-- Failed or errored expectations of [start, end), oldest day first, with their samples.
SELECT (window_start AT TIME ZONE 'UTC')::date AS day, suite, check_name, target, status,
       unexpected_count, unexpected_percent, sample, expected, details ->> 'error' AS error,
       count(*) OVER () AS total
  FROM data_quality_checks
 WHERE is_current
   AND starts_with(check_name, 'quality.')
   AND check_name <> 'quality.' || suite
   AND status IN ('failed', 'error')
   AND window_start >= %(start)s
   AND window_start < %(end)s
 ORDER BY window_start, suite, check_name
 LIMIT %(limit)s
