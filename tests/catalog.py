"""A fingerprint of one database's catalog (no OIDs), to prove migrations round-trip exactly."""

from __future__ import annotations

from typing import Any

FINGERPRINT_SQL = """
SELECT 'rel' AS kind, n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || c.relpersistence::text
       || ':' || coalesce(array_to_string(c.relacl, ','), '') || ':' || coalesce(pg_get_partkeydef(c.oid), '')
       || ':' || coalesce(pg_get_expr(c.relpartbound, c.oid), '') AS item
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
   AND n.nspname NOT LIKE 'pg_temp%'
UNION ALL
SELECT 'col', n.nspname || '.' || c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
       || ':' || a.attnotnull || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'con', conrelid::regclass::text || '.' || conname || ':' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
UNION ALL
SELECT 'idx', pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'fn', p.oid::regprocedure::text || ':' || md5(p.prosrc) || ':' || coalesce(array_to_string(p.proacl, ','), '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'view', c.oid::regclass::text || ':' || md5(pg_get_viewdef(c.oid))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'trg', tgrelid::regclass::text || '.' || tgname || ':' || pg_get_triggerdef(oid)
  FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'nsp', nspname || ':' || coalesce(array_to_string(nspacl, ','), '') FROM pg_namespace
 WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_toast%'
   AND nspname NOT LIKE 'pg_temp%'
UNION ALL
SELECT 'type', t.typname || ':' || t.typtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
   AND t.typrelid = 0
UNION ALL
SELECT 'defacl', defaclrole::regrole::text || ':' || defaclobjtype::text || ':' || array_to_string(defaclacl, ',')
  FROM pg_default_acl
UNION ALL
SELECT 'ext', extname FROM pg_extension
ORDER BY 1, 2
"""


def fingerprint(conn: Any) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(FINGERPRINT_SQL).fetchall()]
