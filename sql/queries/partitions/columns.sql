-- The parent's stored columns in order (generated columns are computed, never copied).
SELECT attname::text
  FROM pg_attribute
 WHERE attrelid = %(oid)s::oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
 ORDER BY attnum
