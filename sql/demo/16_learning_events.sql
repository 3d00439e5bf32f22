-- days x rows_per_day ordinary events: exactly rows_per_day per UTC day, day 0 = today (up to now),
-- 70 percent between 08:00 and 18:00 UTC. Nothing here is anomalous: known event types, a session,
-- model_id NULL or an existing model, occurred_at <= now, lag (ingested_at - occurred_at) <= 30 s.
-- Ids are time-ordered (UUIDv7 layout, deterministic per seed) and rows are inserted in time order:
-- both keep the B-tree inserts local, which roughly halves the load time of 1M events.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days, %(rows_per_day)s::int AS rpd,
                  %(seed)s::text AS seed,
                  date_trunc('day', %(now)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS today),
     m AS (SELECT array_agg(x.id ORDER BY x.name) AS ids FROM ml_models x),
     g AS (SELECT n, (n - 1) / p.rpd AS d FROM p CROSS JOIN generate_series(1, p.days::bigint * p.rpd) AS n)
INSERT INTO learning_events (id, occurred_at, ingested_at, event_type, source, session_id, user_id, model_id, payload)
SELECT (lpad(to_hex(floor(EXTRACT(EPOCH FROM e.occurred_at) * 1000)::bigint), 12, '0') || '7'
        || substr(h.hex, 1, 3) || '8' || substr(h.hex, 4, 15))::uuid,
       e.occurred_at,
       least(e.occurred_at + make_interval(secs => random() * 30), p.ts),
       (ARRAY['model_prediction', 'pattern_detected', 'code_evaluated', 'training_step', 'user_feedback',
              'recommendation_shown', 'recommendation_accepted', 'evolution_step'])[1 + floor(random() * 8)::int],
       (ARRAY['api', 'worker', 'scheduler', 'ui'])[1 + floor(random() * 4)::int],
       md5(p.seed || ':session:' || g.d || ':' || floor(random() * greatest(1, p.rpd / 15)))::uuid,
       'user_' || (1 + floor(random() * 500)::int),
       CASE WHEN random() < 0.4 THEN m.ids[1 + floor(random() * cardinality(m.ids))::int] END,
       jsonb_build_object('seq', g.n, 'duration_ms', floor(random() * 200)::int)
  FROM g
 CROSS JOIN p
 CROSS JOIN m
 CROSS JOIN LATERAL (
        SELECT p.today - make_interval(days => g.d::int)
               + least(interval '1 day', p.ts - (p.today - make_interval(days => g.d::int)))
                 * CASE WHEN random() < 0.7 THEN (8 + 10 * random()) / 24 ELSE random() END AS occurred_at) e
 CROSS JOIN LATERAL (SELECT md5(p.seed || ':event:' || g.n) AS hex) h
 ORDER BY e.occurred_at
