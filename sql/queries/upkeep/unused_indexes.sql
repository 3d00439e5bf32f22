-- Indexes of the tables with no scan since the statistics were reset: not unique, not backing a
-- constraint (primary key, unique, exclusion, a foreign key's referenced key), valid, and not a
-- partition of a partitioned index (that one is reported with the scans of all its partitions,
-- found through pg_inherits in one recursive pass). Sizes as of the last VACUUM or ANALYZE
-- (relpages: pg_relation_size is a file system call per partition, most of this query's time).
WITH RECURSIVE top AS (
    SELECT i.indexrelid, i.indrelid
      FROM pg_index AS i
      JOIN pg_class AS ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = ANY(%(tables)s::oid[])
       AND i.indisvalid
       AND NOT i.indisunique
       AND NOT i.indisexclusion
       AND NOT ic.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
), tree (root, relid) AS (
    SELECT indexrelid, indexrelid FROM top
    UNION ALL
    SELECT tree.root, h.inhrelid FROM tree JOIN pg_inherits AS h ON h.inhparent = tree.relid
), counted AS (
    SELECT tree.root,
           sum(pg_stat_get_numscans(tree.relid))::bigint AS scans,
           sum(c.relpages::bigint * current_setting('block_size')::bigint)::bigint AS bytes,
           count(*) FILTER (WHERE c.relkind = 'i') AS parts
      FROM tree
      JOIN pg_class AS c ON c.oid = tree.relid
     GROUP BY tree.root
)
SELECT ic.relname AS index_name, t.relname AS table_name, counted.scans, counted.bytes, counted.parts
  FROM counted
  JOIN top ON top.indexrelid = counted.root
  JOIN pg_class AS ic ON ic.oid = top.indexrelid
  JOIN pg_class AS t ON t.oid = top.indrelid
 WHERE counted.scans = 0
