-- The health job's crash watchdog: open runs of the jobs %(jobs)s whose database session is gone
-- (the session that starts a ledger row is held for the whole run, so its end means the run died
-- without finishing the row), marked abandoned, found now by the health run %(found_by)s.
UPDATE pgtender_operations o
   SET status = 'abandoned',
       finished_at = greatest(clock_timestamp(), o.started_at),
       error = format('abandoned: its database session (pid %%s) ended without finishing the run;'
                      ' found by the health job''s crash watchdog (operation %%s)', o.pid, %(found_by)s::text)
 WHERE o.job = ANY(%(jobs)s)
   AND o.status = 'started'
   AND o.operation_id <> %(found_by)s
   AND NOT pgtender_session_alive(o.pid, o.started_at)
RETURNING o.job, o.operation_id, o.started_at, o.flow_run_id, o.finished_at, o.error
