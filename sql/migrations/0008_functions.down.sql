-- Backups in schema pgtender_backup are user data and are left alone.
DROP FUNCTION migrate_existing_data();
DROP FUNCTION rollback_schema_version(integer);
DROP FUNCTION backup_critical_data();
DROP FUNCTION validate_schema_integrity();
