-- The latest quality results: current rows of the most recent window, but health's and upkeep's
-- (upkeep's rows share the quality suites' UTC-day windows and are not data quality).
WITH latest AS (
    SELECT max(window_end) AS window_end
      FROM data_quality_checks
     WHERE is_current AND coalesce(suite, '') NOT IN ('health', 'upkeep') AND window_end <= %(now)s
)
SELECT l.window_end,
       count(*) FILTER (WHERE q.status IN ('passed', 'warning')) AS passing,
       count(*) FILTER (WHERE q.status IN ('passed', 'warning', 'failed', 'error')) AS counted,
       count(*) FILTER (WHERE q.status IN ('failed', 'error')) AS failing
  FROM latest l
  JOIN data_quality_checks q ON q.window_end = l.window_end
 WHERE q.is_current AND coalesce(q.suite, '') NOT IN ('health', 'upkeep')
 GROUP BY l.window_end
