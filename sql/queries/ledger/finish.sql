-- Finish an open run. A run that an overlapping run had marked abandoned (its session was lost,
-- e.g. in an outage, while the process went on) still records how it really ended; counts keep
-- when and why it had been marked.
UPDATE pgtender_operations
   SET status = %(status)s,
       finished_at = greatest(clock_timestamp(), started_at),
       counts = counts || %(counts)s
                || CASE WHEN status = 'abandoned'
                        THEN jsonb_build_object('marked_abandoned_at', finished_at, 'marked_abandoned', error)
                        ELSE '{}'::jsonb END,
       error = %(error)s
 WHERE operation_id = %(operation_id)s
   AND status IN ('started', 'abandoned')
RETURNING operation_id
