-- Set a run-time parameter for the rest of the session (a rebuild's lock and statement timeouts:
-- REINDEX CONCURRENTLY cannot run inside a transaction, so SET LOCAL cannot scope them).
SELECT set_config(%(name)s, %(value)s, false)
