-- 40 git operations a day, not yet mirrored into learning_events (migrate_existing_data() does that).
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days, %(seed)s::text AS seed)
INSERT INTO git_operation_learning_events (repository, branch, operation, commit_sha, author, message,
                                           files_changed, lines_added, lines_deleted, duration_ms, success,
                                           metadata, occurred_at, created_at)
SELECT (ARRAY['graph-sitter', 'openevolve', 'pgtender', 'dashboards', 'infra'])[1 + mod(n, 5)],
       CASE WHEN mod(n, 4) = 0 THEN 'main' ELSE 'feature/' || (1 + mod(n * 7, 30)) END,
       (ARRAY['commit', 'commit', 'commit', 'push', 'pull', 'merge', 'rebase', 'checkout'])[1 + mod(n * 3, 8)],
       substr(md5(p.seed || ':sha:' || n) || md5(p.seed || ':sha2:' || n), 1, 40),
       'dev' || (1 + mod(n * 11, 25)),
       'change ' || n,
       1 + floor(random() * 20)::int, floor(random() * 400)::int, floor(random() * 200)::int,
       round((50 + random() * 3000)::numeric, 1)::double precision,
       mod(n, 60) <> 0,
       '{}'::jsonb, t.occurred_at, t.occurred_at + make_interval(secs => 1 + random() * 5)
  FROM p
 CROSS JOIN generate_series(1, p.days * 40) AS n
 CROSS JOIN LATERAL (SELECT p.ts - make_interval(secs => (n - 1) * 86400.0 / 40 + 60 + random() * 600) AS occurred_at) t
 ORDER BY n
