-- Partitions of one parent with bounds (timestamptz; UTC for timestamp/date keys), total size and
-- the planner's row estimate (reltuples is -1 when never analyzed). lo/hi are NULL for DEFAULT and
-- for MINVALUE/MAXVALUE bounds.
SELECT c.relname::text                                 AS name,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'  AS is_default,
       CASE WHEN format_type(a.atttypid, NULL) = 'timestamp with time zone' THEN b[1]::timestamptz
            ELSE b[1]::timestamp AT TIME ZONE 'UTC' END AS lo,
       CASE WHEN format_type(a.atttypid, NULL) = 'timestamp with time zone' THEN b[2]::timestamptz
            ELSE b[2]::timestamp AT TIME ZONE 'UTC' END AS hi,
       pg_total_relation_size(c.oid)                   AS bytes,
       c.reltuples::bigint                             AS estimated_rows,
       c.oid::bigint                                   AS oid
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
  JOIN pg_attribute a ON a.attrelid = i.inhparent AND a.attnum = pt.partattrs[0]
  LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                 '^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') AS b ON true
 WHERE i.inhparent = %(oid)s::oid
 ORDER BY lo NULLS FIRST
