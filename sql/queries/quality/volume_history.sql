-- Row counts of earlier days, as observed by earlier runs of the same volume check.
SELECT window_start, (observed_value #>> '{}')::bigint
  FROM data_quality_checks
 WHERE is_current
   AND check_name = %(check_name)s
   AND target = %(target)s
   AND window_start >= %(since)s
   AND window_start < %(before)s
   AND status IN ('passed', 'failed', 'warning')
   AND jsonb_typeof(observed_value) = 'number'
