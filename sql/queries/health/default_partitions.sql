-- DEFAULT partitions of the schema's partitioned tables.
SELECT p.relname AS parent, c.relname AS default_partition
  FROM pg_partitioned_table pt
  JOIN pg_class p ON p.oid = pt.partrelid
  JOIN pg_namespace n ON n.oid = p.relnamespace
  JOIN pg_class c ON c.oid = pt.partdefid
 WHERE n.nspname = %(schema)s AND pt.partdefid <> 0
 ORDER BY p.relname
