-- The partitioned tables named by the policy: partition strategy, key column and type, owner,
-- DEFAULT partition. One row per requested (schema, table); rel_oid is NULL when it does not exist.
-- Lock-free: the DEFAULT partition is pg_partitioned_table.partdefid, read without opening anything.
SELECT want.nsp,
       want.rel,
       c.oid::bigint                                   AS rel_oid,
       c.relkind::text                                 AS relkind,
       pt.partstrat::text                              AS strategy,
       pt.partnatts                                    AS key_columns,
       a.attname::text                                 AS key_column,
       format_type(a.atttypid, NULL)                   AS key_type,
       pg_get_userbyid(c.relowner)::text               AS owner,
       (SELECT d.relname::text FROM pg_class d WHERE d.oid = pt.partdefid) AS default_name,
       current_user::text                              AS me
  FROM unnest(%(schemas)s::text[], %(tables)s::text[]) WITH ORDINALITY AS want(nsp, rel, ord)
  LEFT JOIN pg_namespace n ON n.nspname = want.nsp
  LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = want.rel
  LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND pt.partnatts = 1 AND a.attnum = pt.partattrs[0]
 ORDER BY want.ord
