-- Demo quality history: 5 checks (names prefixed demo_) per past UTC day window, plus one superseded
-- (is_current = false) attempt for yesterday's first check.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days,
                  date_trunc('day', %(now)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS today),
     c AS (SELECT * FROM (VALUES
            (1, 'demo_learning_events_session_not_null', 'learning_events', 99.0::double precision),
            (2, 'demo_learning_events_known_event_type', 'learning_events', 99.9),
            (3, 'demo_predictions_confidence_in_range', 'predictions', 100.0),
            (4, 'demo_query_latency_vs_baseline', 'query_performance_logs', 95.0),
            (5, 'demo_resource_utilization_below_85', 'resource_utilization', 90.0)) AS v(ord, check_name, target, threshold)),
     w AS (SELECT d, p.today - make_interval(days => d) AS window_start, p.today - make_interval(days => d - 1) AS window_end
             FROM p CROSS JOIN generate_series(1, p.days) AS d)
INSERT INTO data_quality_checks (check_name, suite, target, window_start, window_end, status, observed_value,
                                 expected, threshold, score, unexpected_count, unexpected_percent, sample, details,
                                 checked_at, is_current)
SELECT c.check_name, 'demo', c.target, w.window_start, w.window_end, s.status,
       jsonb_build_object('score', s.score), jsonb_build_object('min_score', c.threshold), c.threshold, s.score,
       s.unexpected, round((100 - s.score)::numeric, 3)::double precision, '[]'::jsonb,
       jsonb_build_object('source', 'demo-data'), w.window_end + interval '1 hour', true
  FROM w CROSS JOIN c
 CROSS JOIN LATERAL (SELECT CASE WHEN mod(w.d + c.ord, 11) = 0 THEN 'failed'
                                 WHEN mod(w.d + c.ord, 5) = 0 THEN 'warning' ELSE 'passed' END AS status,
                            CASE WHEN mod(w.d + c.ord, 11) = 0 THEN 82.5
                                 WHEN mod(w.d + c.ord, 5) = 0 THEN c.threshold - 0.5
                                 ELSE least(100.0, c.threshold + 0.5) END AS score,
                            CASE WHEN mod(w.d + c.ord, 11) = 0 THEN 350::bigint
                                 WHEN mod(w.d + c.ord, 5) = 0 THEN 12::bigint ELSE 0::bigint END AS unexpected) s
UNION ALL
SELECT c.check_name, 'demo', c.target, w.window_start, w.window_end, 'error', NULL, NULL, c.threshold, NULL,
       NULL, NULL, NULL, jsonb_build_object('error', 'connection reset, retried'),
       w.window_end + interval '30 minutes', false
  FROM w CROSS JOIN c
 WHERE w.d = 1 AND c.ord = 1
