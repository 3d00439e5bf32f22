-- Every table, partition and materialized view in the tended schema, with its sizes.
-- A partitioned parent has no storage of its own: its sizes are the sums over its leaves.
WITH rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relispartition, c.reltuples, c.reltoastrelid,
           CASE WHEN c.relispartition THEN (SELECT p.relname FROM pg_inherits i
                                             JOIN pg_class p ON p.oid = i.inhparent
                                            WHERE i.inhrelid = c.oid) END AS parent
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = %(schema)s
       AND c.relkind IN ('r', 'p', 'm')
),
leaves AS (
    SELECT r.oid AS root, t.relid
      FROM rel r
     CROSS JOIN LATERAL pg_partition_tree(r.oid) t
     WHERE r.relkind = 'p' AND t.isleaf
)
SELECT r.relname,
       CASE WHEN r.relkind = 'm' THEN 'view'
            WHEN r.relispartition THEN 'partition'
            ELSE 'table' END                                       AS resource_type,
       r.parent,
       r.relkind = 'p'                                             AS is_partitioned,
       coalesce(sum(pg_table_size(l.relid)), pg_table_size(r.oid))     AS table_bytes,
       coalesce(sum(pg_indexes_size(l.relid)), pg_indexes_size(r.oid)) AS index_bytes,
       coalesce(sum(pg_total_relation_size(l.relid)), pg_total_relation_size(r.oid)) AS total_bytes,
       coalesce(sum(CASE WHEN lc.reltuples < 0 THEN 0 ELSE lc.reltuples END),
                CASE WHEN r.reltuples < 0 THEN NULL ELSE r.reltuples END) AS estimated_rows,
       coalesce(bool_or(lc.reltuples < 0), false) OR (r.relkind <> 'p' AND r.reltuples < 0) AS never_analyzed,
       coalesce(sum(CASE WHEN lc.reltoastrelid <> 0 THEN pg_total_relation_size(lc.reltoastrelid) END),
                CASE WHEN r.reltoastrelid <> 0 THEN pg_total_relation_size(r.reltoastrelid) ELSE 0 END) AS toast_bytes
  FROM rel r
  LEFT JOIN leaves l ON l.root = r.oid AND r.relkind = 'p'
  LEFT JOIN pg_class lc ON lc.oid = l.relid
 GROUP BY r.oid, r.relname, r.relkind, r.relispartition, r.reltuples, r.reltoastrelid, r.parent
 ORDER BY r.relname
