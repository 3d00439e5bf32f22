DROP TABLE IF EXISTS pgtender_operations;
DROP TABLE IF EXISTS schema_migrations;
