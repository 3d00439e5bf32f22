-- 0013: two more ledger statuses, so that every way a run ends has its row: 'rejected' (bad input
-- found once the database was reached: nothing was changed) and 'interrupted' (SIGTERM or Ctrl-C:
-- the run stopped at a safe point, with the counts of what it had done). And the process that ran
-- it (its host was already there): which process to look at, or to stop, on which machine.
ALTER TABLE pgtender_operations DROP CONSTRAINT pgtender_operations_status_check;
ALTER TABLE pgtender_operations ADD CONSTRAINT pgtender_operations_status_check
    CHECK (status IN ('started', 'completed', 'failed', 'skipped', 'problems', 'abandoned',
                      'rejected', 'interrupted'));

COMMENT ON TABLE pgtender_operations IS
    'pgtender operation ledger: start -> completed | problems | skipped | rejected | failed | interrupted,'
    ' or abandoned when found dead.';

ALTER TABLE pgtender_operations ADD COLUMN process_id integer;
COMMENT ON COLUMN pgtender_operations.process_id IS 'The pgtender process that ran it (pid on host).';
