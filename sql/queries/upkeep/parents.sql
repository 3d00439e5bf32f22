-- Partitioned tables (every level) with what decides whether ANALYZE is due: their own statistics
-- (pg_stats' inherited rows, reltuples, last analyze) and their leaf partitions: how many, which
-- (a fingerprint of their oids: a partition attached, detached or dropped changes it), and their
-- cumulative changes (inserts + updates + deletes since the statistics were last reset).
-- Autovacuum never analyzes a partitioned table: nothing else keeps these statistics current.
SELECT p.oid, p.relname, p.reltuples,
       EXISTS (SELECT 1
                 FROM pg_stats AS s
                WHERE s.schemaname = %(schema)s AND s.tablename = p.relname AND s.inherited) AS has_stats,
       greatest(ps.last_analyze, ps.last_autoanalyze) AS last_analyze,
       leaves.partitions, leaves.fingerprint, leaves.changes, leaves.live_rows
  FROM pg_class AS p
  LEFT JOIN pg_stat_user_tables AS ps ON ps.relid = p.oid
 CROSS JOIN LATERAL (
       SELECT count(*) AS partitions,
              md5(coalesce(string_agg(t.relid::oid::text, ',' ORDER BY t.relid::oid), '')) AS fingerprint,
              coalesce(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::bigint AS changes,
              coalesce(sum(s.n_live_tup), 0)::bigint AS live_rows
         FROM pg_partition_tree(p.oid) AS t
         LEFT JOIN pg_stat_user_tables AS s ON s.relid = t.relid
        WHERE t.isleaf
       ) AS leaves
 WHERE p.oid = ANY(%(parents)s::oid[])
 ORDER BY p.relname
