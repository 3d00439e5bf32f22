-- Is pg_cron installed in this database?
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')
