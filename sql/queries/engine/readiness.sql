-- Before a run: is this server a hot standby, does it have pgtender's bookkeeping, and its clock.
SELECT pg_is_in_recovery(), to_regclass('schema_migrations') IS NOT NULL, now()
