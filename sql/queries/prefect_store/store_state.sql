-- Can Prefect keep its own store here? pg_trgm (its migrations create it) and the database.
SELECT
    EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') AS has_trgm,
    EXISTS (SELECT 1 FROM pg_database WHERE datname = %(dbname)s) AS has_database
