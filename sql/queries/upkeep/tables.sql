-- Tables and partitioned tables of the schema, each with the root of its partition tree (NULL: it
-- is in none): an include/exclude list names a table or the partitioned table it belongs to.
SELECT c.oid, c.relname, c.relkind, r.relname AS root
  FROM pg_class AS c
  JOIN pg_namespace AS n ON n.oid = c.relnamespace
  LEFT JOIN pg_class AS r
         ON r.oid = CASE WHEN c.relispartition OR c.relkind = 'p' THEN pg_partition_root(c.oid) END
 WHERE n.nspname = %(schema)s
   AND c.relkind IN ('r', 'p')
 ORDER BY c.relname
