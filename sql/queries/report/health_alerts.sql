-- Health checks that raised an alert (failed, error or warning) in windows that started in
-- [start, end) and not after the report's own instant: one line per check, target and status with
-- the number of 5-minute windows and the first and last window that saw it (their starts: a
-- window starts when its probe ran, so neither is ever after the report was generated).
SELECT check_name, target, status, count(*) AS windows, min(window_start) AS first_seen,
       max(window_start) AS last_seen
  FROM data_quality_checks
 WHERE is_current
   AND suite = 'health'
   AND status IN ('failed', 'error', 'warning')
   AND window_start >= %(start)s
   AND window_start < %(end)s
   AND window_start <= %(now)s
 GROUP BY check_name, target, status
 ORDER BY CASE status WHEN 'failed' THEN 0 WHEN 'error' THEN 1 ELSE 2 END, windows DESC, check_name, target
