-- Release session-level advisory locks taken by try.sql (same keys), in one round trip.
SELECT pg_advisory_unlock(hashtext('pgtender.job'), hashtext(n))
  FROM unnest(%(names)s::text[]) AS t(n)
