-- A run's results replace the current upkeep rows of its window (one current row per check,
-- target and window; a finding fixed since is no longer current).
UPDATE data_quality_checks
   SET is_current = false
 WHERE check_name = ANY(%(checks)s::text[])
   AND window_start = %(window_start)s
   AND window_end = %(window_end)s
   AND is_current
