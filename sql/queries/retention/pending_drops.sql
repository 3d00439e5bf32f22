-- Tables a dump-mode retention run detached from this parent and has not dropped yet (it was
-- killed in between): the DETACH and this marker comment commit together.
SELECT c.oid::bigint AS oid, c.relname::text AS name, obj_description(c.oid, 'pg_class') AS marker
  FROM pg_class c
 WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)
   AND c.relkind = 'r'
   AND NOT c.relispartition
   AND starts_with(obj_description(c.oid, 'pg_class'), %(prefix)s)
 ORDER BY c.relname
