-- The day's weighted score of every suite (its suite-level row), per UTC day of [start, end).
SELECT (window_start AT TIME ZONE 'UTC')::date AS day, suite, score, status, threshold
  FROM data_quality_checks
 WHERE is_current
   AND check_name = 'quality.' || suite
   AND window_start >= %(start)s
   AND window_start < %(end)s
 ORDER BY day, suite
