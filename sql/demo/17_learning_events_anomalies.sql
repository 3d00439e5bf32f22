-- Rows that satisfy every constraint but break business expectations (each row has one anomaly):
--   greatest(1, days*rows_per_day/1000) with session_id NULL,
--   10 with event_type 'unknown_evt',
--   5 with occurred_at 1..5 minutes after now,
--   4 in the month 4 months after now's month (beyond the created partitions: DEFAULT partition),
--   3 in year 2199 (DEFAULT partition),
--   7 whose model_id matches no ml_models row (no FK on learning_events.model_id),
--   12 ingested 20 minutes after they occurred (lag alert > 5 minutes), in the last 35 minutes.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days, %(rows_per_day)s::int AS rpd,
                  %(seed)s::text AS seed,
                  date_trunc('month', %(now)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month_start)
INSERT INTO learning_events (occurred_at, ingested_at, event_type, source, session_id, user_id, model_id, payload)
SELECT a.occurred_at, a.ingested_at, a.event_type, 'api',
       CASE WHEN a.kind = 'null_session' THEN NULL ELSE md5(p.seed || ':anomaly:' || a.kind || ':' || a.k)::uuid END,
       'user_' || (1 + mod(a.k, 500)),
       a.model_id,
       jsonb_build_object('anomaly', a.kind, 'k', a.k)
  FROM p
 CROSS JOIN LATERAL (
    SELECT 'null_session' AS kind, k,
           p.ts - make_interval(secs => k * (p.days * 86400.0 / (greatest(1, (p.days::bigint * p.rpd) / 1000) + 1))) AS occurred_at,
           p.ts - make_interval(secs => k * (p.days * 86400.0 / (greatest(1, (p.days::bigint * p.rpd) / 1000) + 1))) + interval '2 seconds' AS ingested_at,
           'user_feedback' AS event_type, NULL::uuid AS model_id
      FROM generate_series(1, greatest(1, (p.days::bigint * p.rpd) / 1000)) AS k
    UNION ALL
    SELECT 'unknown_evt', k, p.ts - make_interval(mins => k * 90), p.ts - make_interval(mins => k * 90) + interval '1 second',
           'unknown_evt', NULL
      FROM generate_series(1, 10) AS k
    UNION ALL
    SELECT 'future', k, p.ts + make_interval(mins => k), p.ts, 'model_prediction', NULL
      FROM generate_series(1, 5) AS k
    UNION ALL
    SELECT 'default_partition_future_month', k,
           p.month_start + interval '4 months' + make_interval(days => 9, hours => k), p.ts, 'training_step', NULL
      FROM generate_series(1, 4) AS k
    UNION ALL
    SELECT 'default_partition_2199', k, timestamptz '2199-01-01 00:00:00+00' + make_interval(days => k), p.ts,
           'evolution_step', NULL
      FROM generate_series(1, 3) AS k
    UNION ALL
    SELECT 'orphan_model_id', k, p.ts - make_interval(hours => k * 3), p.ts - make_interval(hours => k * 3) + interval '3 seconds',
           'model_prediction', md5(p.seed || ':no-such-model:' || k)::uuid
      FROM generate_series(1, 7) AS k
    UNION ALL
    SELECT 'high_lag', k, p.ts - make_interval(mins => 35 - k), p.ts - make_interval(mins => 15 - k),
           'code_evaluated', NULL
      FROM generate_series(1, 12) AS k
 ) a
 ORDER BY a.kind, a.k
