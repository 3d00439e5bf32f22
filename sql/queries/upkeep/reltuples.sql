-- The planner's row count of one table (after an ANALYZE).
SELECT reltuples FROM pg_class WHERE oid = %(oid)s::oid
