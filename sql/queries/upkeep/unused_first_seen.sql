-- When upkeep first saw each of these indexes unscanned (carried from run to run in the row).
SELECT DISTINCT ON (target) target, observed_value ->> 'first_seen'
  FROM data_quality_checks
 WHERE check_name = 'upkeep.unused_index'
   AND is_current
   AND target = ANY(%(names)s::text[])
 ORDER BY target, window_start DESC
