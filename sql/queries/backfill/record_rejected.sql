-- A backfill request refused as bad input (nothing ran): one ledger row, started and finished now,
-- with the request as given (params) and why it was refused (error), for the weekly report.
INSERT INTO pgtender_operations (job, status, started_at, finished_at, flow_run_id, params, error, host, pid)
VALUES ('backfill', 'rejected', statement_timestamp(), statement_timestamp(), %(flow_run_id)s, %(params)s,
        %(error)s, %(host)s, pg_backend_pid())
RETURNING operation_id
