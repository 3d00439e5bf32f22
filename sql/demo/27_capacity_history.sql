-- Capacity history consistent with the data just loaded (this file runs after every insert): for
-- each of four time-stamped tables, its row count at UTC midnight of each of the last `days` days
-- is the number of its rows stamped before that midnight, and its total size the table's real
-- size today scaled by the same fraction. The capacity job's first snapshot then continues the
-- same line (metric names as the capacity job writes them: total_bytes, row_count).
WITH p AS (SELECT date_trunc('day', %(now)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS today,
                  %(days)s::int AS days),
stamps AS (
    SELECT 'learning_events' AS table_name, occurred_at AS at FROM learning_events
    UNION ALL SELECT 'system_performance_metrics', recorded_at FROM system_performance_metrics
    UNION ALL SELECT 'pattern_occurrences', detected_at FROM pattern_occurrences
    UNION ALL SELECT 'query_performance_logs', logged_at FROM query_performance_logs
),
now_size AS (
    SELECT t.table_name,
           coalesce((SELECT sum(pg_total_relation_size(pt.relid))
                       FROM pg_partition_tree(t.table_name::regclass) pt WHERE pt.isleaf),
                    pg_total_relation_size(t.table_name::regclass))::double precision AS bytes,
           (SELECT count(*) FROM stamps s WHERE s.table_name = t.table_name)::double precision AS total_rows
      FROM (SELECT DISTINCT table_name FROM stamps) t
),
history AS (
    SELECT n.table_name, p.today - make_interval(days => d) AS measured_at, n.bytes, n.total_rows,
           (SELECT count(*) FROM stamps s
             WHERE s.table_name = n.table_name AND s.at < p.today - make_interval(days => d))::double precision AS rows_then
      FROM p CROSS JOIN now_size n CROSS JOIN generate_series(1, p.days) AS d
)
INSERT INTO capacity_planning_metrics (metric_name, resource_type, resource_name, measured_at, value, unit, metadata)
SELECT x.metric_name, 'table', h.table_name, h.measured_at, x.value, x.unit,
       jsonb_build_object('source', 'demo-data')
  FROM history h
 CROSS JOIN LATERAL (VALUES
        ('row_count', h.rows_then, 'rows'),
        ('total_bytes', round(h.bytes * CASE WHEN h.total_rows > 0 THEN h.rows_then / h.total_rows ELSE 1 END), 'bytes')
       ) AS x(metric_name, value, unit)
