-- Unused and duplicate indexes as the week's last upkeep run found them ([start, end), UTC-day
-- windows): pgtender never drops them, the report shows them so that a person decides. The last
-- run is the latest window holding an 'upkeep.run' row, so indexes gone since are not shown.
WITH last AS (
    SELECT max(window_start) AS window_start
      FROM data_quality_checks
     WHERE is_current
       AND check_name = 'upkeep.run'
       AND window_start >= %(start)s
       AND window_start < %(end)s
)
SELECT q.check_name, q.target, q.observed_value, q.window_start
  FROM last
  JOIN data_quality_checks AS q ON q.window_start = last.window_start
 WHERE q.is_current
   AND q.check_name IN ('upkeep.unused_index', 'upkeep.duplicate_index')
   AND q.status = 'warning'
 ORDER BY q.check_name DESC, q.target
