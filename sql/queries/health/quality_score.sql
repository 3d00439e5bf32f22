-- The latest quality results: current non-health rows of the most recent window.
WITH latest AS (
    SELECT max(window_end) AS window_end
      FROM data_quality_checks
     WHERE is_current AND suite IS DISTINCT FROM 'health' AND window_end <= %(now)s
)
SELECT l.window_end,
       count(*) FILTER (WHERE q.status IN ('passed', 'warning')) AS passing,
       count(*) FILTER (WHERE q.status IN ('passed', 'warning', 'failed', 'error')) AS counted,
       count(*) FILTER (WHERE q.status IN ('failed', 'error')) AS failing
  FROM latest l
  JOIN data_quality_checks q ON q.window_end = l.window_end
 WHERE q.is_current AND q.suite IS DISTINCT FROM 'health'
 GROUP BY l.window_end
