-- 0011: two more ledger statuses: 'abandoned' (a run found dead by the next run of its job — its
-- database session gone or its flow run ended — with the time it was found as finished_at) and
-- 'problems' (a run that did its work and found problems).
-- pgtender_session_alive(pid, since): is the session that wrote a ledger row still there? A pid
-- reused by a later session does not count (it started after the row); a session whose start
-- this role may not see (another role, no pg_read_all_stats) counts as alive.
ALTER TABLE pgtender_operations DROP CONSTRAINT pgtender_operations_status_check;
ALTER TABLE pgtender_operations ADD CONSTRAINT pgtender_operations_status_check
    CHECK (status IN ('started', 'completed', 'failed', 'skipped', 'problems', 'abandoned'));

CREATE FUNCTION pgtender_session_alive(session_pid integer, since timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_stat_activity a
                    WHERE a.pid = session_pid
                      AND (a.backend_start IS NULL OR a.backend_start <= since))
$$;
COMMENT ON FUNCTION pgtender_session_alive(integer, timestamptz) IS
    'Is the session (pid) that wrote a pgtender ledger row at "since" still connected?';

COMMENT ON TABLE pgtender_operations IS
    'pgtender operation ledger: start -> completed | failed | problems | skipped, or abandoned when found dead.';
