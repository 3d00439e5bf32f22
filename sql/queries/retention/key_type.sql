-- The type of one column of a table (the partition key a dump is restored by).
SELECT format_type(a.atttypid, NULL)
  FROM pg_attribute a
 WHERE a.attrelid = %(table)s::regclass
   AND a.attname = %(key)s
   AND NOT a.attisdropped
