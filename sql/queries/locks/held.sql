-- Whether this session still holds the advisory lock of name (try.sql's key).
SELECT EXISTS (
    SELECT 1 FROM pg_locks
     WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND classid::int = hashtext('pgtender.job') AND objid::int = hashtext(%(name)s) AND objsubid = 2
)
