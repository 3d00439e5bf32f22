-- Back to 0001's statuses: a run that found problems reads as before ('failed', error
-- 'ProblemsFound: ...'); an abandoned run as failed with its reason.
DROP FUNCTION pgtender_session_alive(integer, timestamptz);
UPDATE pgtender_operations
   SET status = 'failed',
       error = CASE WHEN status = 'problems' AND coalesce(error, '') NOT LIKE 'ProblemsFound:%'
                    THEN 'ProblemsFound: ' || coalesce(error, 'problems found')
                    ELSE coalesce(error, status) END
 WHERE status IN ('problems', 'abandoned');
ALTER TABLE pgtender_operations DROP CONSTRAINT pgtender_operations_status_check;
ALTER TABLE pgtender_operations ADD CONSTRAINT pgtender_operations_status_check
    CHECK (status IN ('started', 'completed', 'failed', 'skipped'));
COMMENT ON TABLE pgtender_operations IS 'pgtender operation ledger: start -> complete | fail, with counts and flow run id.';
