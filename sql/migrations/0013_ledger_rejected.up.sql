-- 0013: one more ledger status, 'rejected': a request refused as bad input before it ran (a backfill
-- of future days, start after end, too many days). Nothing of the tended data changed; the row
-- (params: the request as given, error: why) lets the weekly report count and show it.
ALTER TABLE pgtender_operations DROP CONSTRAINT pgtender_operations_status_check;
ALTER TABLE pgtender_operations ADD CONSTRAINT pgtender_operations_status_check
    CHECK (status IN ('started', 'completed', 'failed', 'skipped', 'problems', 'abandoned', 'rejected'));

COMMENT ON TABLE pgtender_operations IS
    'pgtender operation ledger: start -> completed | failed | problems | skipped, or abandoned when found dead; rejected: a request refused as bad input.';
