INSERT INTO pgtender_operations (job, flow_run_id, params, host, pid, process_id)
VALUES (%(job)s, %(flow_run_id)s, %(params)s, %(host)s, pg_backend_pid(), %(process_id)s)
RETURNING operation_id, started_at
