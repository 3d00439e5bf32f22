-- The database's size in bytes, with its name.
SELECT current_database(), pg_database_size(current_database())
