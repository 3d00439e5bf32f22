UPDATE data_quality_checks
   SET is_current = false
 WHERE check_name = %(check_name)s AND target = %(target)s
   AND window_start = %(window_start)s AND window_end = %(window_end)s
   AND is_current
