-- 30 user sessions a day, not yet mirrored; every 10th is still open (session_end NULL).
-- duration_seconds is left NULL for migrate_existing_data() to derive.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days, %(seed)s::text AS seed)
INSERT INTO user_session_learning_events (session_id, user_id, session_start, session_end, actions_count, actions,
                                          features_used, client, outcome, satisfaction_score, metadata, created_at)
SELECT md5(p.seed || ':user-session:' || n)::uuid,
       'user_' || (1 + mod(n * 17, 500)),
       t.session_start,
       CASE WHEN mod(n, 10) = 0 THEN NULL ELSE least(t.session_start + make_interval(mins => 1 + mod(n * 7, 90)), p.ts) END,
       a.actions_count,
       jsonb_build_array('open_dashboard', 'view_recommendation'),
       ARRAY['dashboard', 'recommendations'],
       (ARRAY['web', 'vscode', 'cli'])[1 + mod(n, 3)],
       CASE WHEN mod(n, 10) = 0 THEN NULL WHEN mod(n, 7) = 0 THEN 'abandoned' ELSE 'completed' END,
       round(random()::numeric, 3)::double precision,
       '{}'::jsonb,
       t.session_start + interval '1 second'
  FROM p
 CROSS JOIN generate_series(1, p.days * 30) AS n
 CROSS JOIN LATERAL (SELECT p.ts - make_interval(secs => (n - 1) * 86400.0 / 30 + 120 + random() * 900) AS session_start) t
 CROSS JOIN LATERAL (SELECT 1 + floor(random() * 60)::int AS actions_count) a
 ORDER BY n
