-- Estimated bloat of the valid btree indexes of the tables that are at least %(min_bytes)s large,
-- from the catalog alone (the well-known estimate of ioguix/pgsql-bloat-estimation, written out
-- here): the leaf pages the index would need at its fillfactor for its tuples (reltuples) of their
-- average width (pg_stats), against the pages it has. `estimated` is false when a column has no
-- statistics (or is of type name, whose width pg_stats does not know): no guess is made then.
-- A tuple: IndexTupleData (8 bytes, + a 4-byte null bitmap when a column has NULLs) and the data,
-- each padded to MAXALIGN (8), plus a 4-byte line pointer; a page: 8 kB minus the page header (24)
-- and the btree special space (16); one metapage.
WITH idx AS (
    SELECT ic.oid, ic.relname AS index_name, t.relname AS table_name, n.nspname,
           ic.reltuples, ic.relpages,
           coalesce(substring(array_to_string(ic.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 90)
               AS fillfactor,
           current_setting('block_size')::numeric AS bs
      FROM pg_index AS i
      JOIN pg_class AS ic ON ic.oid = i.indexrelid
      JOIN pg_class AS t ON t.oid = i.indrelid
      JOIN pg_namespace AS n ON n.oid = t.relnamespace
      JOIN pg_am AS am ON am.oid = ic.relam
     WHERE i.indrelid = ANY(%(tables)s::oid[])
       AND i.indisvalid
       AND NOT i.indisexclusion  -- REINDEX CONCURRENTLY cannot rebuild an exclusion constraint's index
       AND ic.relkind = 'i'
       AND am.amname = 'btree'
       AND ic.relpages > 0
       AND ic.relpages::numeric * current_setting('block_size')::numeric >= %(min_bytes)s
), widths AS (
    SELECT idx.oid,
           max(coalesce(s.null_frac, 0)) > 0 AS nullable,
           sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS data_width,
           count(s.avg_width) = count(*) AND NOT bool_or(a.atttypid = 'pg_catalog.name'::regtype)
               AS estimated
      FROM idx
      JOIN pg_attribute AS a ON a.attrelid = idx.oid AND a.attnum > 0
      LEFT JOIN pg_stats AS s
             ON s.schemaname = idx.nspname
            AND ((s.tablename = idx.table_name AND s.attname = pg_get_indexdef(a.attrelid, a.attnum, true))
                 OR (s.tablename = idx.index_name AND s.attname = a.attname))
     GROUP BY idx.oid
), tuples AS (
    SELECT idx.*, w.estimated,
           4 + ceil((8 + CASE WHEN w.nullable THEN 4 ELSE 0 END) / 8.0) * 8
             + ceil(w.data_width / 8.0) * 8 AS tuple_bytes
      FROM idx
      JOIN widths AS w ON w.oid = idx.oid
)
SELECT oid, index_name, table_name, relpages, reltuples, fillfactor,
       (relpages * bs)::bigint AS bytes, estimated,
       CASE WHEN estimated THEN
           1 + ceil(greatest(reltuples, 0) / greatest(1, floor((bs - 24 - 16) * fillfactor / 100.0 / tuple_bytes)))
       END AS expected_pages
  FROM tuples
 ORDER BY table_name, index_name
