-- Total size (table, indexes, TOAST) of one relation. Takes ACCESS SHARE on it: ask only for
-- the partitions acted on, never in a catalog scan.
SELECT pg_total_relation_size(%(oid)s::oid) AS bytes
