-- Whether the schema [views] schema_name names exists.
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s)
