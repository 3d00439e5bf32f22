-- First statement of every transaction of a run's work: its fence rows, locked FOR SHARE until the
-- transaction ends (a run taking the lock over waits for it), with their tokens and holders for
-- the run to compare; and the transaction is tagged with the run (application_name, reset at its
-- end), so the run that takes over can cancel it (cancel.sql).
SELECT f.lock_name, f.token, f.operation_id, set_config('application_name', %(tag)s, true)
  FROM pgtender_fences f
 WHERE f.lock_name = ANY(%(names)s::text[])
   FOR SHARE
