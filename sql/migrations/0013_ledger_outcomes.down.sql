ALTER TABLE pgtender_operations DROP COLUMN process_id;
-- Rows with the newer statuses are kept as 'failed' (their error says what they were).
UPDATE pgtender_operations SET status = 'failed' WHERE status IN ('rejected', 'interrupted');
ALTER TABLE pgtender_operations DROP CONSTRAINT pgtender_operations_status_check;
ALTER TABLE pgtender_operations ADD CONSTRAINT pgtender_operations_status_check
    CHECK (status IN ('started', 'completed', 'failed', 'skipped', 'problems', 'abandoned'));
