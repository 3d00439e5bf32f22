-- Partitions of the given parents with their bounds as timestamptz (UTC for timestamp/date keys),
-- the planner's row estimate (reltuples is -1 when never analyzed) and oid. lo/hi are NULL for
-- DEFAULT and for MINVALUE/MAXVALUE bounds.
-- Takes no lock on any partition: pg_get_expr(relpartbound, 0) deparses the bound alone, whereas
-- pg_get_expr(relpartbound, <the child's oid>) opens the child and waits behind anyone's ACCESS
-- EXCLUSIVE on it (a concurrent ATTACH's hold on DEFAULT). Sizes need the child's lock: callers that
-- want them ask pg_total_relation_size for the few partitions they act on.
SELECT i.inhparent::bigint                             AS parent_oid,
       c.relname::text                                 AS name,
       pg_get_expr(c.relpartbound, 0) = 'DEFAULT'      AS is_default,
       CASE WHEN format_type(a.atttypid, NULL) = 'timestamp with time zone' THEN b[1]::timestamptz
            ELSE b[1]::timestamp AT TIME ZONE 'UTC' END AS lo,
       CASE WHEN format_type(a.atttypid, NULL) = 'timestamp with time zone' THEN b[2]::timestamptz
            ELSE b[2]::timestamp AT TIME ZONE 'UTC' END AS hi,
       c.reltuples::bigint                             AS estimated_rows,
       c.oid::bigint                                   AS oid
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
  JOIN pg_attribute a ON a.attrelid = i.inhparent AND a.attnum = pt.partattrs[0]
  LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, 0),
                                 '^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') AS b ON true
 WHERE i.inhparent = ANY(%(oids)s::oid[])
 ORDER BY i.inhparent, lo NULLS FIRST
