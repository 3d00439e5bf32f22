-- Sessions of this database (other databases of the cluster are other tenants' business):
-- open transactions, idle-in-transaction sessions and lock waits, in seconds, never our own.
SELECT pid,
       state,
       extract(epoch FROM clock_timestamp() - xact_start)::float8   AS xact_seconds,
       extract(epoch FROM clock_timestamp() - state_change)::float8 AS state_seconds,
       wait_event_type = 'Lock'                                     AS waiting_on_lock,
       CASE WHEN wait_event_type = 'Lock' THEN cardinality(pg_blocking_pids(pid)) ELSE 0 END AS blockers,
       left(query, 200)                                             AS query
  FROM pg_stat_activity
 WHERE datname = current_database()
   AND pid <> pg_backend_pid()
   AND backend_type = 'client backend'
   AND xact_start IS NOT NULL
