-- Back to 0011's statuses: rejected requests never ran; their rows go.
DELETE FROM pgtender_operations WHERE status = 'rejected';
ALTER TABLE pgtender_operations DROP CONSTRAINT pgtender_operations_status_check;
ALTER TABLE pgtender_operations ADD CONSTRAINT pgtender_operations_status_check
    CHECK (status IN ('started', 'completed', 'failed', 'skipped', 'problems', 'abandoned'));
COMMENT ON TABLE pgtender_operations IS
    'pgtender operation ledger: start -> completed | failed | problems | skipped, or abandoned when found dead.';
