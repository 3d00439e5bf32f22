-- Heap bytes and planner row estimate of a plain table (to estimate the bytes a DELETE frees).
SELECT pg_table_size(%(oid)s::oid) AS bytes, greatest(c.reltuples, 0)::bigint AS estimated_rows
  FROM pg_class c WHERE c.oid = %(oid)s::oid
