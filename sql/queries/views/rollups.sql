-- Rollup tables of a schema: a table T with a function refresh_T(date, date) RETURNS bigint in the
-- same schema that recomputes T's rows for a range of UTC days (e.g. 0010's learning_events_daily).
SELECT c.relname, p.proname
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc p ON p.pronamespace = n.oid AND p.proname = 'refresh_' || c.relname
 WHERE n.nspname = %(schema)s
   AND c.relkind IN ('r', 'p')
   AND p.prokind = 'f'
   AND p.pronargs = 2 AND p.proargtypes[0] = 'date'::regtype AND p.proargtypes[1] = 'date'::regtype
   AND p.prorettype = 'bigint'::regtype
 ORDER BY c.relname
