-- Invalid indexes of the tables: left by a failed CREATE INDEX CONCURRENTLY or REINDEX
-- CONCURRENTLY. `building`: an index build runs on the table right now (its index is invalid until
-- it ends: left alone). `base`: for a REINDEX CONCURRENTLY leftover (<index>_ccnew, <index>_ccold),
-- the index it is a copy of, when that one exists on the same table.
SELECT ic.oid, ic.relname AS index_name, t.relname AS table_name, ic.relkind, i.indisunique,
       pg_relation_size(ic.oid) AS bytes,
       EXISTS (SELECT 1
                 FROM pg_stat_progress_create_index AS pr
                WHERE pr.relid = i.indrelid
                  AND pr.datid = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database()))
           AS building,
       (SELECT b.relname
          FROM pg_index AS bi
          JOIN pg_class AS b ON b.oid = bi.indexrelid
         WHERE bi.indrelid = i.indrelid
           AND bi.indexrelid <> i.indexrelid
           AND b.relname = substring(ic.relname FROM '^(.+)_cc(?:new|old)[0-9]*$')) AS base,
       pg_get_indexdef(ic.oid) AS definition
  FROM pg_index AS i
  JOIN pg_class AS ic ON ic.oid = i.indexrelid
  JOIN pg_class AS t ON t.oid = i.indrelid
 WHERE i.indrelid = ANY(%(tables)s::oid[])
   AND NOT i.indisvalid
 ORDER BY t.relname, ic.relname
