-- Partitioned tables (every level) with what decides whether ANALYZE is due: their own statistics
-- (reltuples: -1 until the first ANALYZE, PostgreSQL 14+; the last analyze) and their leaf
-- partitions: how many, which
-- (a fingerprint of their oids: a partition attached, detached or dropped changes it), and their
-- cumulative changes (inserts + updates + deletes since the statistics were last reset).
-- Autovacuum never analyzes a partitioned table: nothing else keeps these statistics current.
-- (The tree through pg_inherits in one recursive pass and the counters through pg_stat_get_* by
-- oid: pg_partition_tree per parent and the pg_stat_user_tables view cost 40 ms for 450 partitions,
-- and pg_stats, which reads every statistics row, 10 ms more.)
WITH RECURSIVE tree (parent, relid) AS (
    SELECT p.oid, p.oid FROM unnest(%(parents)s::oid[]) AS p(oid)
    UNION ALL
    SELECT tree.parent, h.inhrelid FROM tree JOIN pg_inherits AS h ON h.inhparent = tree.relid
), per_parent AS (
    SELECT tree.parent,
           count(*) AS partitions,
           md5(string_agg(tree.relid::text, ',' ORDER BY tree.relid)) AS fingerprint,
           sum(pg_stat_get_tuples_inserted(tree.relid) + pg_stat_get_tuples_updated(tree.relid)
               + pg_stat_get_tuples_deleted(tree.relid))::bigint AS changes,
           sum(pg_stat_get_live_tuples(tree.relid))::bigint AS live_rows
      FROM tree
      JOIN pg_class AS c ON c.oid = tree.relid
     WHERE c.relkind <> 'p'
     GROUP BY tree.parent
)
SELECT p.oid, p.relname, p.reltuples,
       greatest(pg_stat_get_last_analyze_time(p.oid), pg_stat_get_last_autoanalyze_time(p.oid)) AS last_analyze,
       coalesce(pp.partitions, 0), coalesce(pp.fingerprint, md5('')), coalesce(pp.changes, 0),
       coalesce(pp.live_rows, 0)
  FROM pg_class AS p
  LEFT JOIN per_parent AS pp ON pp.parent = p.oid
 WHERE p.oid = ANY(%(parents)s::oid[])
