-- Mark a job's open runs whose database session is gone as abandoned, found now by the run
-- %(found_by)s. The session that starts a ledger row is held for the whole run, so its end means
-- the run ended (kill -9, crash, outage) without finishing the row.
UPDATE pgtender_operations o
   SET status = 'abandoned',
       finished_at = greatest(clock_timestamp(), o.started_at),
       error = format('abandoned: its database session (pid %%s) ended without finishing the run;'
                      ' found by the next %%s run (operation %%s)', o.pid, o.job, %(found_by)s::text)
 WHERE o.job = %(job)s
   AND o.status = 'started'
   AND o.operation_id <> %(found_by)s
   AND NOT pgtender_session_alive(o.pid, o.started_at)
RETURNING o.operation_id, o.started_at, o.flow_run_id, o.finished_at, o.error
