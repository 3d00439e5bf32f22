-- Partitions of the given parents with their bounds as timestamptz (UTC for timestamp/date keys),
-- the planner's row estimate (reltuples is -1 when never analyzed) and oid. lo/hi are NULL for
-- DEFAULT and for MINVALUE/MAXVALUE bounds.
-- Takes no lock on any partition: pg_get_expr(relpartbound, 0) deparses the bound alone, whereas
-- pg_get_expr(relpartbound, <the child's oid>) opens the child and waits behind anyone's ACCESS
-- EXCLUSIVE on it (a concurrent ATTACH's hold on DEFAULT). Sizes need the child's lock: callers that
-- want them ask pg_total_relation_size for the few partitions they act on.
-- The bound text is cast back in this same session (its TimeZone and DateStyle wrote it); split_part
-- rather than a regular expression: the read is the whole cost of a pass with nothing to do.
-- OFFSET 0 keeps the inner select from being flattened: otherwise the planner copies pg_get_expr into
-- each of the five expressions that use it and deparses every bound five times (half the read).
SELECT i.inhparent::bigint                         AS parent_oid,
       c.relname::text                             AS name,
       e.expr = 'DEFAULT'                          AS is_default,
       CASE WHEN NOT e.ranged THEN NULL
            WHEN k.tz THEN split_part(e.expr, '''', 2)::timestamptz
            ELSE split_part(e.expr, '''', 2)::timestamp AT TIME ZONE 'UTC' END AS lo,
       CASE WHEN NOT e.ranged THEN NULL
            WHEN k.tz THEN split_part(e.expr, '''', 4)::timestamptz
            ELSE split_part(e.expr, '''', 4)::timestamp AT TIME ZONE 'UTC' END AS hi,
       c.reltuples::bigint                         AS estimated_rows,
       c.oid::bigint                               AS oid
  FROM (SELECT pt.partrelid, a.atttypid = 'timestamptz'::regtype AS tz
          FROM pg_partitioned_table pt
          JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
         WHERE pt.partrelid = ANY(%(oids)s::oid[])) k
  JOIN pg_inherits i ON i.inhparent = k.partrelid
  JOIN pg_class c ON c.oid = i.inhrelid
 CROSS JOIN LATERAL (SELECT x.expr, x.expr LIKE 'FOR VALUES FROM (''%%'') TO (''%%'')' AS ranged
                       FROM (SELECT pg_get_expr(c.relpartbound, 0) AS expr OFFSET 0) x) e
 ORDER BY 1, 4 NULLS FIRST
