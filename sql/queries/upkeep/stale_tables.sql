-- Tables (not partitioned parents) holding rows whose statistics are missing (never analyzed:
-- reltuples < 0) or stale (more rows changed since their last analyze than the threshold).
-- Autovacuum analyzes these; upkeep lists the ones it has not reached.
SELECT c.relname, c.reltuples, s.n_live_tup, s.n_mod_since_analyze,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze
  FROM pg_class AS c
  JOIN pg_stat_user_tables AS s ON s.relid = c.oid
 WHERE c.oid = ANY(%(tables)s::oid[])
   AND c.relkind = 'r'
   AND s.n_live_tup > 0
   AND (c.reltuples < 0 OR s.n_mod_since_analyze > greatest(50, %(fraction)s * c.reltuples))
 ORDER BY c.relname
