UPDATE pgtender_operations
   SET status = %(status)s,
       finished_at = greatest(clock_timestamp(), started_at),
       counts = counts || %(counts)s,
       error = %(error)s
 WHERE operation_id = %(operation_id)s
   AND status = 'started'
RETURNING operation_id
