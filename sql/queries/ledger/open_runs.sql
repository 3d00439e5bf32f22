-- A job's runs still open in the ledger (other than the asking run), with their flow run ids.
SELECT operation_id, flow_run_id
  FROM pgtender_operations
 WHERE job = %(job)s
   AND status = 'started'
   AND operation_id <> %(found_by)s
   AND flow_run_id IS NOT NULL
 ORDER BY started_at
