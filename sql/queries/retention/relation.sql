-- Does a table with this oid still exist?
SELECT 1 FROM pg_class WHERE oid = %(oid)s::oid
