-- Total size (table, indexes, TOAST) of each given relation. Takes ACCESS SHARE on each: ask only
-- for the partitions acted on, never in a catalog scan.
SELECT r.oid::bigint, pg_total_relation_size(r.oid) AS bytes
  FROM unnest(%(oids)s::oid[]) AS r(oid)
