-- A re-run of a suite for a window replaces its results: the previous rows stay as history.
UPDATE data_quality_checks
   SET is_current = false
 WHERE is_current
   AND suite = %(suite)s
   AND window_start = %(window_start)s
   AND window_end = %(window_end)s
   AND starts_with(check_name, 'quality.')
