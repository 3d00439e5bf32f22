INSERT INTO pgtender_operations (job, flow_run_id, params, host, pid)
VALUES (%(job)s, %(flow_run_id)s, %(params)s, %(host)s, pg_backend_pid())
RETURNING operation_id, started_at
