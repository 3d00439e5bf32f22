-- The current recorded results of one window's suites, as Data Docs shows them.
SELECT suite, target, check_name, status, details, sample, expected, score
  FROM data_quality_checks
 WHERE is_current AND starts_with(check_name, 'quality.')
   AND window_start = %(s)s AND window_end = %(e)s AND suite = ANY(%(suites)s)
 ORDER BY suite, check_name
