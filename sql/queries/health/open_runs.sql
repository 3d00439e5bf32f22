-- The runs of the jobs %(jobs)s still open in the ledger that belong to a flow run (their flow
-- run's state says whether they ended), other than the asking health run.
SELECT job, operation_id, flow_run_id
  FROM pgtender_operations
 WHERE job = ANY(%(jobs)s)
   AND status = 'started'
   AND operation_id <> %(found_by)s
   AND flow_run_id IS NOT NULL
 ORDER BY started_at
