-- Items of a backfill request finished since a moment (for `pgtender backfill --deployment --watch`).
SELECT count(*)
  FROM pgtender_operations
 WHERE job = 'backfill'
   AND status <> 'started'
   AND params->>'request' = %(request)s
   AND params ? 'item'
   AND started_at >= %(since)s
