-- 0009: least-privilege roles.
--   pgtender_maintainer (NOLOGIN): maintenance of the analytics schema. ALL PRIVILEGES on every
--     table, partition and materialized view of 0002-0007 (and on tables created later by the
--     migrating role, through default privileges), all sequences, EXECUTE on the maintenance
--     functions that are not PUBLIC (backup/rollback/migrate_existing_data); USAGE and CREATE on
--     schema public. DDL on existing objects (CREATE TABLE ... PARTITION OF, ATTACH/DETACH, and
--     REFRESH MATERIALIZED VIEW before PostgreSQL 17) still needs ownership: objects stay owned by
--     the migrating role, which pgtender connects as. On PostgreSQL 17+ ALL includes MAINTAIN.
--   pgtender_checker (NOLOGIN): read-only observer. USAGE on public, SELECT on every analytics
--     table, partition and materialized view; validate_schema_integrity() is PUBLIC. Deliberate
--     exception: INSERT and UPDATE on data_quality_checks only, because the quality/health checks
--     write their results there and supersede an earlier result by flipping is_current (UPDATE).
--     No DELETE (history is pruned by retention, as the owner), no TRUNCATE, no other table. The
--     alternative, a SECURITY DEFINER "record result" function, hides which columns are written
--     and moves trust into a function body; an explicit column-complete table grant is easier to
--     audit, and the table holds only derived results, so a misbehaving checker can at worst
--     forge check outcomes, never touch source data.
--   Both roles deliberately get nothing on 0001's schema_migrations and pgtender_operations: those
--   are pgtender's own bookkeeping, written by the migrating role. (This also keeps the round
--   trip exact: 0001 cannot materialise their ACLs, and a REVOKE never resets an ACL to NULL.)
-- Roles are cluster-global: several databases of one server run this migration, possibly at the
-- same time, so creation tolerates an existing role or a concurrent creator.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgtender_maintainer') THEN
        BEGIN
            CREATE ROLE pgtender_maintainer NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by a migration of another database
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgtender_checker') THEN
        BEGIN
            CREATE ROLE pgtender_checker NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$roles$;

GRANT USAGE, CREATE ON SCHEMA public TO pgtender_maintainer;
GRANT USAGE ON SCHEMA public TO pgtender_checker;

-- Every table, partition and materialized view of schema public except 0001's bookkeeping.
DO $grants$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname
          FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p', 'm', 'v', 'f')
           AND c.relname NOT IN ('schema_migrations', 'pgtender_operations')
         ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT ALL PRIVILEGES ON TABLE public.%I TO pgtender_maintainer', r.relname);
        EXECUTE format('GRANT SELECT ON TABLE public.%I TO pgtender_checker', r.relname);
    END LOOP;
END
$grants$;
GRANT INSERT, UPDATE ON data_quality_checks TO pgtender_checker;

GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public TO pgtender_maintainer;
-- Other functions are executable by PUBLIC already.
GRANT EXECUTE ON FUNCTION backup_critical_data(), rollback_schema_version(integer), migrate_existing_data()
    TO pgtender_maintainer;

-- Objects the migrating role creates later (e.g. partitions made by the partitions job).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL PRIVILEGES ON TABLES TO pgtender_maintainer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL PRIVILEGES ON SEQUENCES TO pgtender_maintainer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO pgtender_checker;
