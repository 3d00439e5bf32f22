-- The table the suite validates: its oid and whether it is partitioned (NULL row: no such table).
SELECT p.oid::bigint, p.relkind = 'p'
  FROM pg_class p
 WHERE p.oid = to_regclass(%(table)s)
