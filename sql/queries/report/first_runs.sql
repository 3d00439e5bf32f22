-- The first ledger entry of every job before %(end)s: lateness counts from there, never from
-- before pgtender ran here (a job with no entry counts from pgtender's first entry of any job).
-- A request refused as bad input ('rejected') ran nothing: it is not a first run.
SELECT job, min(started_at) AS first_started_at
  FROM pgtender_operations
 WHERE started_at < %(end)s
   AND status <> 'rejected'
 GROUP BY job
