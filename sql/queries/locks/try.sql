-- pgtender's job locks (restore.sql holds the only other key), defined here once: (hashtext('pgtender.job'),
-- hashtext(name)), session-level. name is the job ("views"), or the job and a day ("quality:2026-12-01").
-- Tries every name in one round trip; returns whether each was acquired, in the given order.
SELECT pg_try_advisory_lock(hashtext('pgtender.job'), hashtext(n)) AS acquired
  FROM unnest(%(names)s::text[]) WITH ORDINALITY AS t(n, i)
 ORDER BY i
