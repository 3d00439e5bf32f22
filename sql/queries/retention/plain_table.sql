-- A plain (non-partitioned) table and its time column; NULL columns when either does not exist.
SELECT c.oid::bigint                    AS rel_oid,
       c.relkind::text                  AS relkind,
       format_type(a.atttypid, NULL)    AS column_type
  FROM pg_namespace n
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = %(table)s
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %(column)s AND a.attnum > 0
                          AND NOT a.attisdropped
 WHERE n.nspname = %(schema)s
