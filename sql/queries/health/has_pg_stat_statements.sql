-- Is pg_stat_statements installed in this database?
SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'
