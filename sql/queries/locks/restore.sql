-- The restore of one partition's dump, one at a time per table (transaction-level):
-- (hashtext('pgtender.restore'), hashtext(table)), beside the jobs' keys in try.sql.
SELECT pg_advisory_xact_lock(hashtext('pgtender.restore'), hashtext(%(table)s))
