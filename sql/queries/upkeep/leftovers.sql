-- Invalid copies a failed REINDEX CONCURRENTLY of one index left on its table
-- (<index>_ccnew, <index>_ccnew1, ..., <index>_ccold ...).
SELECT ic.relname
  FROM pg_index AS i
  JOIN pg_class AS ic ON ic.oid = i.indexrelid
 WHERE i.indrelid = %(table_oid)s::oid
   AND NOT i.indisvalid
   AND left(ic.relname, length(%(index)s)) = %(index)s
   AND substring(ic.relname FROM length(%(index)s) + 1) ~ '^_cc(new|old)[0-9]*$'
 ORDER BY ic.relname
