-- 8 series sampled every 5 minutes over the last `days` days: 2304 rows a day, with a daily shape.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days),
     s AS (SELECT * FROM (VALUES
            ('api', 'request_latency_ms', 'ms', 120.0::double precision),
            ('api', 'requests_per_second', 'rps', 350.0),
            ('api', 'error_rate', 'ratio', 0.004),
            ('worker', 'queue_depth', 'count', 40.0),
            ('worker', 'task_duration_ms', 'ms', 900.0),
            ('database', 'active_connections', 'count', 60.0),
            ('database', 'cache_hit_ratio', 'ratio', 0.97),
            ('database', 'transactions_per_second', 'tps', 1200.0)) AS t(component, metric_name, unit, base))
INSERT INTO system_performance_metrics (recorded_at, metric_name, component, host, value, unit, tags)
SELECT t.recorded_at, s.metric_name, s.component, 'db-1',
       CASE WHEN s.unit = 'ratio'
            THEN least(1.0, s.base * (0.98 + random() * 0.04))
            ELSE round((s.base * (1 + 0.5 * sin(2 * pi() * EXTRACT(HOUR FROM t.recorded_at AT TIME ZONE 'UTC') / 24.0 - pi() / 2) + 0.5)
                                 * (0.9 + random() * 0.2))::numeric, 3)::double precision END,
       s.unit, jsonb_build_object('env', 'demo')
  FROM p
 CROSS JOIN generate_series(0, p.days * 288 - 1) AS k
 CROSS JOIN s
 CROSS JOIN LATERAL (SELECT p.ts - make_interval(mins => k * 5) AS recorded_at) t
 ORDER BY k, s.component, s.metric_name
