-- The status of one run in the ledger (no row: a run this database's ledger does not know).
SELECT status FROM pgtender_operations WHERE operation_id = %(operation_id)s
