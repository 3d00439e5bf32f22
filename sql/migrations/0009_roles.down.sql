-- Undo 0009 in this database, then drop the roles unless another database still uses them.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM pgtender_checker;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL PRIVILEGES ON SEQUENCES FROM pgtender_maintainer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL PRIVILEGES ON TABLES FROM pgtender_maintainer;

REVOKE EXECUTE ON FUNCTION backup_critical_data(), rollback_schema_version(integer), migrate_existing_data()
    FROM pgtender_maintainer;
REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM pgtender_maintainer;

-- Every relation of public that names one of the roles in its ACL (including partitions created
-- since 0009 through the default privileges); relations without such a grant are left untouched.
DO $grants$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname
          FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace
           AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a
                        WHERE a.grantee IN (to_regrole('pgtender_maintainer'), to_regrole('pgtender_checker')))
         ORDER BY c.relname
    LOOP
        EXECUTE format('REVOKE ALL PRIVILEGES ON TABLE public.%I FROM pgtender_maintainer, pgtender_checker', r.relname);
    END LOOP;
END
$grants$;

REVOKE USAGE ON SCHEMA public FROM pgtender_checker;
REVOKE USAGE, CREATE ON SCHEMA public FROM pgtender_maintainer;

DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pgtender_checker', 'pgtender_maintainer'] LOOP
        BEGIN
            EXECUTE format('DROP ROLE IF EXISTS %I', r);
        EXCEPTION
            WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role % is still used by another database; kept', r;
            WHEN internal_error THEN
                -- A database holding grants to the role was dropped while DROP ROLE checked its
                -- shared dependencies: PostgreSQL looks that database up after it is gone. Kept,
                -- as when still used; any other internal error is raised.
                IF SQLERRM NOT LIKE 'cache lookup failed for database%' THEN
                    RAISE;
                END IF;
                RAISE NOTICE 'role % kept: a database was dropped while it was checked (%)', r, SQLERRM;
        END;
    END LOOP;
END
$roles$;
