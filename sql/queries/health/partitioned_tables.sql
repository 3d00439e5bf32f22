SELECT p.relname
  FROM pg_partitioned_table pt
  JOIN pg_class p ON p.oid = pt.partrelid
  JOIN pg_namespace n ON n.oid = p.relnamespace
 WHERE n.nspname = %(schema)s AND NOT p.relispartition
 ORDER BY p.relname
