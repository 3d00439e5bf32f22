-- Does this database have pgtender's migration bookkeeping yet?
SELECT to_regclass('schema_migrations') IS NOT NULL
