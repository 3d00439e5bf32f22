-- Mark one open run as abandoned (its flow run ended without finishing the row), found now.
UPDATE pgtender_operations
   SET status = 'abandoned',
       finished_at = greatest(clock_timestamp(), started_at),
       error = %(reason)s
 WHERE operation_id = %(operation_id)s
   AND status = 'started'
RETURNING operation_id, started_at, flow_run_id, finished_at, error
