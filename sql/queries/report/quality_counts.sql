-- Expectation results of the quality suites per suite over [start, end) (UTC day windows).
-- The suite-level row ('quality.<suite>') carries the day's score and is not counted here.
SELECT suite,
       count(*) FILTER (WHERE status = 'passed')  AS passed,
       count(*) FILTER (WHERE status = 'warning') AS warning,
       count(*) FILTER (WHERE status = 'failed')  AS failed,
       count(*) FILTER (WHERE status = 'error')   AS error,
       count(*) FILTER (WHERE status = 'skipped') AS skipped
  FROM data_quality_checks
 WHERE is_current
   AND starts_with(check_name, 'quality.')
   AND check_name <> 'quality.' || suite
   AND window_start >= %(start)s
   AND window_start < %(end)s
 GROUP BY suite
 ORDER BY suite
