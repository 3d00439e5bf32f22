-- One finished backfill item as one ledger row (job 'backfill', params request/job/day): written
-- once the item ended, so a crash mid-item leaves no row and a resume simply does it again.
INSERT INTO pgtender_operations (job, status, started_at, finished_at, flow_run_id, params, counts, error, host, pid)
VALUES ('backfill', %(status)s, clock_timestamp() - make_interval(secs => %(seconds)s), clock_timestamp(),
        %(flow_run_id)s, %(params)s, %(counts)s, %(error)s, %(host)s, pg_backend_pid())
RETURNING operation_id
