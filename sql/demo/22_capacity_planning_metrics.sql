-- Daily size and row-count history of 5 tables at UTC midnight of the last `days` days
-- (10 rows a day), plus 5 size projections 90 days ahead.
WITH p AS (SELECT %(now)s::timestamptz AS ts, %(days)s::int AS days,
                  date_trunc('day', %(now)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS today),
     t AS (SELECT * FROM (VALUES
            ('learning_events', 12.0e9::double precision, 1.0e6::double precision),
            ('system_performance_metrics', 120.0e9, 10.0e6),
            ('pattern_occurrences', 1.2e9, 1.0e5),
            ('predictions', 0.8e9, 5.0e4),
            ('query_performance_logs', 0.3e9, 2.0e4)) AS v(table_name, bytes_per_year, rows_per_day))
INSERT INTO capacity_planning_metrics (metric_name, resource_type, resource_name, measured_at, value, unit,
                                       projection_horizon, threshold, projected_at, metadata)
SELECT x.metric_name, 'table', t.table_name, p.today - make_interval(days => d),
       x.value, x.unit, NULL, NULL, NULL, jsonb_build_object('source', 'demo-data')
  FROM p
 CROSS JOIN generate_series(1, p.days) AS d
 CROSS JOIN t
 CROSS JOIN LATERAL (VALUES
        ('table_total_bytes', round((t.bytes_per_year / 365 * (400 - d) * (0.98 + random() * 0.04))::numeric)::double precision, 'bytes'),
        ('row_count', round((t.rows_per_day * (400 - d))::numeric)::double precision, 'rows')) AS x(metric_name, value, unit)
UNION ALL
SELECT 'table_total_bytes_projection', 'table', t.table_name, p.today - interval '1 day',
       round((t.bytes_per_year / 365 * 490)::numeric)::double precision, 'bytes', interval '90 days',
       t.bytes_per_year * 1.5, p.today - interval '1 day' + interval '90 days',
       jsonb_build_object('source', 'demo-data', 'method', 'linear')
  FROM p CROSS JOIN t
