-- The (day, job) items of a backfill request already completed (resumability), newest outcome first.
SELECT DISTINCT ON (params->>'day', params->>'job')
       params->>'day' AS day, params->>'job' AS job, counts->>'outcome' AS outcome,
       coalesce(counts->>'detail', '') AS detail
  FROM pgtender_operations
 WHERE job = 'backfill'
   AND status = 'completed'
   AND params->>'request' = %(request)s
   AND params ? 'item'
 ORDER BY params->>'day', params->>'job', finished_at DESC
