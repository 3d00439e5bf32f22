-- Cancel the statements in flight of earlier runs' transactions (tagged by check.sql): each rolls
-- back; those runs find their fence taken at their next transaction and stop.
SELECT a.pid, pg_cancel_backend(a.pid)
  FROM pg_stat_activity a
 WHERE a.datname = current_database()
   AND a.pid <> pg_backend_pid()
   AND a.application_name = ANY(%(tags)s::text[])
