-- Tables with at least %(min_dead)s dead tuples: live and dead tuples, the last (auto)vacuum, and
-- whether autovacuum's own trigger (threshold + scale factor x rows, the server's settings or the
-- table's reloptions) says a vacuum is due.
SELECT c.relname, s.n_live_tup, s.n_dead_tup,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       s.n_dead_tup > coalesce(
           (SELECT split_part(o, '=', 2)::float8 FROM unnest(c.reloptions) AS o
             WHERE o LIKE 'autovacuum\_vacuum\_threshold=%%'),
           current_setting('autovacuum_vacuum_threshold')::float8)
         + coalesce(
           (SELECT split_part(o, '=', 2)::float8 FROM unnest(c.reloptions) AS o
             WHERE o LIKE 'autovacuum\_vacuum\_scale\_factor=%%'),
           current_setting('autovacuum_vacuum_scale_factor')::float8) * greatest(c.reltuples, 0) AS due
  FROM pg_stat_user_tables AS s
  JOIN pg_class AS c ON c.oid = s.relid
 WHERE s.relid = ANY(%(tables)s::oid[])
   AND c.relkind = 'r'
   AND s.n_dead_tup >= %(min_dead)s
 ORDER BY c.relname
