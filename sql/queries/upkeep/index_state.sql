-- One index now: valid?, its size, its table's oid (NULL row: it does not exist).
SELECT i.indisvalid, pg_relation_size(i.indexrelid), i.indrelid
  FROM pg_index AS i
  JOIN pg_class AS ic ON ic.oid = i.indexrelid
  JOIN pg_namespace AS n ON n.oid = ic.relnamespace
 WHERE n.nspname = %(schema)s AND ic.relname = %(index)s
