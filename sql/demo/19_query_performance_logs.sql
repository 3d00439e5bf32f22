-- 200 ordinary query logs a day over 20 fingerprints; execution_ms within 0.6..1.4 x baseline_ms.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days)
INSERT INTO query_performance_logs (logged_at, query_fingerprint, query_text, database_name, user_name,
                                    application_name, execution_ms, planning_ms, rows_returned, calls,
                                    shared_blks_hit, shared_blks_read, baseline_ms, source)
SELECT p.ts - make_interval(secs => (n - 1) * 86400.0 / 200 + random() * 300),
       'fp_' || lpad((1 + mod(n, 20))::text, 2, '0'),
       'SELECT ... /* dashboard query ' || (1 + mod(n, 20)) || ' */',
       'analytics', 'app', 'dashboard',
       round(((2 + mod(n, 20) * 7.5) * (0.6 + random() * 0.8))::numeric, 3)::double precision,
       round((0.1 + random())::numeric, 3)::double precision,
       (10 + random() * 5000)::bigint, 1,
       (100 + random() * 10000)::bigint, (random() * 500)::bigint,
       2 + mod(n, 20) * 7.5,
       'application'
  FROM p CROSS JOIN generate_series(1, p.days * 200) AS n
 ORDER BY n
