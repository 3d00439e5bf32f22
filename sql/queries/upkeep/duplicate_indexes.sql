-- Groups of valid indexes of one table that are the same index (access method, columns or
-- expressions, operator classes, collations, orderings, predicate), whatever they are called;
-- partitions of a partitioned index are left out (the partitioned index stands for them).
WITH groups AS (
    SELECT i.indrelid, array_agg(i.indexrelid ORDER BY ic.relname) AS ids
      FROM pg_index AS i
      JOIN pg_class AS ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = ANY(%(tables)s::oid[])
       AND i.indisvalid
       AND NOT ic.relispartition
     GROUP BY i.indrelid, ic.relam, i.indkey::text, i.indclass::text, i.indcollation::text,
              i.indoption::text, pg_get_expr(i.indexprs, i.indrelid), pg_get_expr(i.indpred, i.indrelid)
    HAVING count(*) > 1
)
SELECT t.relname AS table_name,
       array_agg(ic.relname ORDER BY ic.relname) AS indexes,
       array_agg(i.indisunique OR EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
                 ORDER BY ic.relname) AS enforcing,
       array_agg(pg_relation_size(ic.oid) ORDER BY ic.relname) AS bytes,
       min(pg_get_indexdef(g.ids[1])) AS definition
  FROM groups AS g
  JOIN pg_class AS t ON t.oid = g.indrelid
  JOIN pg_index AS i ON i.indexrelid = ANY(g.ids)
  JOIN pg_class AS ic ON ic.oid = i.indexrelid
 GROUP BY g.ids, t.relname
 ORDER BY t.relname, min(ic.relname)
