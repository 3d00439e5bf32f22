-- Foreign keys between tables (a partitioned table's once, not per partition): which table
-- references which, so that a folder of dumps is restored parents first.
SELECT cn.nspname::text AS schema, c.relname::text AS name, pn.nspname::text AS ref_schema, p.relname::text AS ref_name
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace cn ON cn.oid = c.relnamespace
  JOIN pg_class p ON p.oid = k.confrelid
  JOIN pg_namespace pn ON pn.oid = p.relnamespace
 WHERE k.contype = 'f'
   AND k.conparentid = 0
