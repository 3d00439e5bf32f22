-- Range partitions of the schema's partitioned tables on one time column, with their bounds.
-- The bound text comes from pg_get_expr(relpartbound) and is cast back in this same session
-- (same DateStyle/TimeZone as rendered it). MINVALUE/MAXVALUE and DEFAULT give NULL.
-- pg_get_expr(relpartbound, 0) opens no partition: never waits behind an ATTACH's lock on DEFAULT.
SELECT p.relname AS parent,
       c.relname AS partition,
       CASE WHEN b.expr ~ '^FOR VALUES FROM \(''' THEN substring(b.expr FROM '^FOR VALUES FROM \(''([^'']+)''\)')::timestamptz END AS lower_bound,
       CASE WHEN b.expr ~ ' TO \(''' THEN substring(b.expr FROM ' TO \(''([^'']+)''\)$')::timestamptz END AS upper_bound
  FROM pg_partitioned_table pt
  JOIN pg_class p ON p.oid = pt.partrelid
  JOIN pg_namespace n ON n.oid = p.relnamespace
  JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = pt.partattrs[0]
  JOIN pg_inherits i ON i.inhparent = p.oid
  JOIN pg_class c ON c.oid = i.inhrelid
  CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, 0) AS expr) b
 WHERE n.nspname = %(schema)s
   AND pt.partstrat = 'r' AND pt.partnatts = 1
   AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
   AND b.expr <> 'DEFAULT'
 ORDER BY p.relname, lower_bound NULLS FIRST
