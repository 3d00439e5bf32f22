-- Every table, partition and materialized view outside the system schemas, as a down step's effect
-- is judged (flows/core/drop_guard.py): does it still exist (oid), was its storage replaced
-- (relfilenode: TRUNCATE, a rewrite), how many rows this transaction deleted from it, and the
-- table at the top of its partition tree (itself when it is in none).
SELECT c.oid::bigint                                                   AS oid,
       n.nspname::text                                                 AS schema,
       c.relname::text                                                 AS name,
       c.relkind::text                                                 AS kind,
       c.relfilenode::bigint                                           AS filenode,
       coalesce(pg_partition_root(c.oid)::oid, c.oid)::bigint          AS root,
       CASE WHEN c.relkind = 'r' THEN pg_stat_get_xact_tuples_deleted(c.oid) ELSE 0 END::bigint
                                                                       AS deleted,
       c.oid = coalesce(to_regclass('schema_migrations')::oid, 0)     AS bookkeeping
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%'
   AND n.nspname NOT LIKE 'pg\_temp\_%'
