-- The schema pgstattuple is installed in (no row: not installed here).
SELECT n.nspname
  FROM pg_extension AS e
  JOIN pg_namespace AS n ON n.oid = e.extnamespace
 WHERE e.extname = 'pgstattuple'
