-- Materialized views of a schema: populated?, a unique index usable by REFRESH ... CONCURRENTLY
-- (valid, unique, no WHERE, only plain columns), and the materialized views each one reads,
-- directly or through ordinary views (pg_rewrite -> pg_depend, followed through relkind 'v').
WITH RECURSIVE mv AS (
    SELECT c.oid, c.relname, c.relispopulated
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = %(schema)s
       AND c.relkind = 'm'
),
reads AS (
    -- (view, relation its query reads), for materialized and ordinary views
    SELECT DISTINCT r.ev_class AS viewoid, d.refobjid AS reloid
      FROM pg_rewrite r
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass
                      AND d.objid = r.oid
                      AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid <> r.ev_class
),
walk AS (
    SELECT mv.oid AS root, rd.reloid, ARRAY[mv.oid] AS path
      FROM mv JOIN reads rd ON rd.viewoid = mv.oid
    UNION ALL
    SELECT w.root, rd.reloid, w.path || w.reloid
      FROM walk w
      JOIN pg_class c ON c.oid = w.reloid AND c.relkind = 'v'
      JOIN reads rd ON rd.viewoid = w.reloid
     WHERE NOT w.reloid = ANY (w.path)
)
SELECT mv.relname,
       mv.relispopulated,
       (SELECT i.relname
          FROM pg_index x
          JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = mv.oid
           AND x.indisunique AND x.indisvalid AND x.indisready
           AND x.indpred IS NULL AND x.indexprs IS NULL
         ORDER BY i.relname
         LIMIT 1)                                             AS unique_index,
       coalesce((SELECT array_agg(DISTINCT d.relname ORDER BY d.relname)
                   FROM walk w
                   JOIN mv d ON d.oid = w.reloid
                  WHERE w.root = mv.oid AND d.oid <> mv.oid), '{}') AS depends_on
  FROM mv
 ORDER BY mv.relname
