-- Where pg_cron keeps its tables: this database when the extension is here, else cron.database_name
-- (readable from every database of a server that preloads pg_cron).
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') AS here,
       current_setting('cron.database_name', true) AS cron_database,
       current_database() AS this_database
