-- Indexes of the tables with no scan since the statistics were reset: not unique, not backing a
-- constraint (primary key, unique, exclusion, a foreign key's referenced key), valid, and not a
-- partition of a partitioned index (that one is reported with the scans of all its partitions).
WITH top AS (
    SELECT i.indexrelid, ic.relname AS index_name, t.relname AS table_name
      FROM pg_index AS i
      JOIN pg_class AS ic ON ic.oid = i.indexrelid
      JOIN pg_class AS t ON t.oid = i.indrelid
     WHERE i.indrelid = ANY(%(tables)s::oid[])
       AND i.indisvalid
       AND NOT i.indisunique
       AND NOT i.indisexclusion
       AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
       AND NOT EXISTS (SELECT 1 FROM pg_inherits AS h WHERE h.inhrelid = i.indexrelid)
)
SELECT top.index_name, top.table_name, tree.scans, tree.bytes, tree.parts
  FROM top
 CROSS JOIN LATERAL (
       SELECT coalesce(sum(s.idx_scan), 0)::bigint AS scans,
              coalesce(sum(pg_relation_size(x.relid)), 0)::bigint AS bytes,
              count(*) FILTER (WHERE x.isleaf) AS parts
         FROM (SELECT top.indexrelid AS relid, true AS isleaf
                WHERE NOT EXISTS (SELECT 1 FROM pg_partition_tree(top.indexrelid))
               UNION ALL
               SELECT pt.relid, pt.isleaf FROM pg_partition_tree(top.indexrelid) AS pt) AS x
         LEFT JOIN pg_stat_user_indexes AS s ON s.indexrelid = x.relid
       ) AS tree
 WHERE tree.scans = 0
 ORDER BY top.table_name, top.index_name
