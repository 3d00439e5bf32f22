INSERT INTO schema_migrations (version, name, description, checksum, down_sql, execution_ms)
VALUES (%(version)s, %(name)s, %(description)s, %(checksum)s, %(down_sql)s, %(execution_ms)s)
