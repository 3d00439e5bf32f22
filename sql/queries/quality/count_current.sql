-- Current quality rows of one suite and window (pgtender's quality rows are named 'quality.*').
SELECT count(*)
  FROM data_quality_checks
 WHERE is_current
   AND suite = %(suite)s
   AND window_start = %(window_start)s
   AND window_end = %(window_end)s
   AND starts_with(check_name, 'quality.')
