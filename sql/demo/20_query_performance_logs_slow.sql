-- 6 very slow queries in the last 6 hours: execution_ms = 12 x baseline_ms + 4000 (> 2 x baseline).
WITH p AS (SELECT %(now)s::timestamptz AS ts)
INSERT INTO query_performance_logs (logged_at, query_fingerprint, query_text, database_name, user_name,
                                    application_name, execution_ms, planning_ms, rows_returned, calls,
                                    shared_blks_hit, shared_blks_read, baseline_ms, source, metadata)
SELECT p.ts - make_interval(hours => k - 1, mins => 10),
       'fp_' || lpad((1 + mod(k * 3, 20))::text, 2, '0'),
       'SELECT ... /* dashboard query ' || (1 + mod(k * 3, 20)) || ' */',
       'analytics', 'app', 'dashboard',
       12 * (2 + mod(k * 3, 20) * 7.5) + 4000, 2.5, 250000, 1, 1000, 180000,
       2 + mod(k * 3, 20) * 7.5, 'application',
       jsonb_build_object('anomaly', 'slow_query')
  FROM p CROSS JOIN generate_series(1, 6) AS k
 ORDER BY k
