-- The newest migration applied to this database.
SELECT coalesce(max(version), 0) FROM schema_migrations
