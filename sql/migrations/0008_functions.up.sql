-- 0008: operational SQL functions named by the seed:
--   validate_schema_integrity(), backup_critical_data(), rollback_schema_version(int),
--   migrate_existing_data().
-- All are plain plpgsql (no extensions) and work on the public schema.

CREATE FUNCTION validate_schema_integrity()
RETURNS TABLE (check_name text, object_name text, status text, details text)
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $fn$
#variable_conflict use_column
DECLARE
    expected_tables text[] := ARRAY[
        'schema_migrations', 'pgtender_operations',
        'ml_models', 'training_datasets', 'model_training_sessions', 'model_evaluations', 'feature_store',
        'evolution_experiments', 'evolution_generations', 'evolution_individuals', 'code_evaluations', 'llm_interactions',
        'identified_patterns', 'pattern_occurrences', 'predictions', 'recommendations', 'ab_testing_experiments',
        'learning_events', 'system_performance_metrics', 'query_performance_logs', 'resource_utilization',
        'capacity_planning_metrics',
        'git_operation_learning_events', 'user_session_learning_events', 'data_quality_checks'];
    t          text;
    r          record;
    p          record;
    n          bigint;
    found_any  boolean;
    covering   text;
    key_type   text;
    lo         text;
    hi         text;
    inside     boolean;
BEGIN
    -- 1. every expected table exists
    FOREACH t IN ARRAY expected_tables LOOP
        check_name := 'table_exists';
        object_name := t;
        IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
                    WHERE ns.nspname = 'public' AND c.relname = t AND c.relkind IN ('r', 'p')) THEN
            status := 'passed';  details := NULL;
        ELSE
            status := 'failed';  details := 'table is missing';
        END IF;
        RETURN NEXT;
    END LOOP;

    -- 2. orphaned rows for every foreign key of the public schema (multi-column keys included).
    --    MATCH SIMPLE semantics: a child row with any NULL key column is not checked.
    --    Constraints cloned onto partitions (conparentid <> 0) are covered by their parent's check.
    FOR r IN
        SELECT c.conname,
               cr.relname AS child_name,
               format('%I.%I', cn.nspname, cr.relname) AS child_rel,
               format('%I.%I', pn.nspname, pr.relname) AS parent_rel,
               (SELECT string_agg(format('c.%I IS NOT NULL', a.attname), ' AND ' ORDER BY k.ord)
                  FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS not_null_pred,
               (SELECT string_agg(format('p.%I = c.%I', pa.attname, ca.attname), ' AND ' ORDER BY k.ord)
                  FROM unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(child_att, parent_att, ord)
                  JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child_att
                  JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent_att) AS join_pred,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
                  FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS child_cols
          FROM pg_constraint c
          JOIN pg_class cr ON cr.oid = c.conrelid
          JOIN pg_namespace cn ON cn.oid = cr.relnamespace
          JOIN pg_class pr ON pr.oid = c.confrelid
          JOIN pg_namespace pn ON pn.oid = pr.relnamespace
         WHERE c.contype = 'f'
           AND c.conparentid = 0
           AND cn.nspname = 'public'
         ORDER BY cr.relname, c.conname
    LOOP
        EXECUTE format('SELECT count(*) FROM %s AS c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s AS p WHERE %s)',
                       r.child_rel, r.not_null_pred, r.parent_rel, r.join_pred)
           INTO n;
        check_name := 'foreign_key_orphans';
        object_name := r.child_name || '.' || r.conname;
        IF n = 0 THEN
            status := 'passed';
            details := format('(%s) -> %s: no orphaned rows', r.child_cols, r.parent_rel);
        ELSE
            status := 'failed';
            details := format('%s orphaned row(s): (%s) -> %s has no matching parent', n, r.child_cols, r.parent_rel);
        END IF;
        RETURN NEXT;
    END LOOP;

    -- 3. constraints left NOT VALID
    found_any := false;
    FOR r IN
        SELECT cl.relname, c.conname, c.contype
          FROM pg_constraint c
          JOIN pg_class cl ON cl.oid = c.conrelid
          JOIN pg_namespace ns ON ns.oid = c.connamespace
         WHERE ns.nspname = 'public' AND NOT c.convalidated
         ORDER BY cl.relname, c.conname
    LOOP
        found_any := true;
        check_name := 'constraint_validated';
        object_name := r.relname || '.' || r.conname;
        status := 'warning';
        details := format('%s constraint is NOT VALID: existing rows were never checked (ALTER TABLE ... VALIDATE CONSTRAINT)',
                          CASE r.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check' ELSE r.contype::text END);
        RETURN NEXT;
    END LOOP;
    IF NOT found_any THEN
        check_name := 'constraint_validated'; object_name := 'public';
        status := 'passed'; details := 'all constraints are validated';
        RETURN NEXT;
    END IF;

    -- 4. partitioned tables: DEFAULT partition, rows parked in it, a partition covering now()
    FOR r IN
        SELECT c.oid, c.relname, pt.partdefid, pt.partstrat, pt.partnatts,
               (SELECT format('%I.%I', dn.nspname, d.relname)
                  FROM pg_class d JOIN pg_namespace dn ON dn.oid = d.relnamespace
                 WHERE d.oid = pt.partdefid) AS default_rel,
               (SELECT format_type(a.atttypid, a.atttypmod)
                  FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum = pt.partattrs[0]) AS key_type
          FROM pg_partitioned_table pt
          JOIN pg_class c ON c.oid = pt.partrelid
          JOIN pg_namespace ns ON ns.oid = c.relnamespace
         WHERE ns.nspname = 'public' AND NOT c.relispartition
         ORDER BY c.relname
    LOOP
        check_name := 'default_partition';
        object_name := r.relname;
        IF r.partdefid <> 0 THEN
            status := 'passed';  details := format('DEFAULT partition %s', r.default_rel);
        ELSE
            status := 'warning'; details := 'no DEFAULT partition: rows outside every partition range are rejected';
        END IF;
        RETURN NEXT;

        IF r.partdefid <> 0 THEN
            EXECUTE format('SELECT count(*) FROM %s', r.default_rel) INTO n;
            check_name := 'default_partition_rows';
            object_name := r.relname;
            IF n = 0 THEN
                status := 'passed';  details := format('%s is empty', r.default_rel);
            ELSE
                status := 'warning';
                details := format('%s row(s) in %s: create their partitions and move them', n, r.default_rel);
            END IF;
            RETURN NEXT;
        END IF;

        -- Coverage of now(): single-column RANGE partitioning on a date/time key only.
        IF r.partstrat = 'r' AND r.partnatts = 1
           AND r.key_type IN ('timestamp with time zone', 'timestamp without time zone', 'date') THEN
            covering := NULL;
            FOR p IN
                SELECT ch.relname, pg_get_expr(ch.relpartbound, ch.oid) AS bound
                  FROM pg_inherits i
                  JOIN pg_class ch ON ch.oid = i.inhrelid
                 WHERE i.inhparent = r.oid AND ch.oid <> r.partdefid
                 ORDER BY ch.relname
            LOOP
                lo := substring(p.bound FROM $re$FROM \('([^']*)'\)$re$);
                hi := substring(p.bound FROM $re$TO \('([^']*)'\)$re$);
                EXECUTE format('SELECT ($1 >= %s) AND ($1 < %s)',
                               CASE WHEN lo IS NULL THEN '$1' ELSE format('%L::%s', lo, r.key_type) END,
                               CASE WHEN hi IS NULL THEN '''infinity''::timestamptz' ELSE format('%L::%s', hi, r.key_type) END)
                   INTO inside
                  USING now();
                IF inside THEN
                    covering := p.relname;
                    EXIT;
                END IF;
            END LOOP;
            check_name := 'partition_covers_now';
            object_name := r.relname;
            IF covering IS NOT NULL THEN
                status := 'passed';  details := format('now() falls in partition %s', covering);
            ELSIF r.partdefid <> 0 THEN
                status := 'warning'; details := 'no partition covers now(): current rows land in the DEFAULT partition';
            ELSE
                status := 'failed';  details := 'no partition covers now() and there is no DEFAULT partition: inserts fail';
            END IF;
            RETURN NEXT;
        END IF;
    END LOOP;

    -- 5. materialized views populated and refreshable CONCURRENTLY
    FOR r IN
        SELECT c.oid, c.relname, c.relispopulated
          FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
         WHERE ns.nspname = 'public' AND c.relkind = 'm'
         ORDER BY c.relname
    LOOP
        check_name := 'materialized_view_populated';
        object_name := r.relname;
        IF r.relispopulated THEN
            status := 'passed';  details := NULL;
        ELSE
            status := 'failed';  details := 'not populated: run REFRESH MATERIALIZED VIEW (without CONCURRENTLY) once';
        END IF;
        RETURN NEXT;

        check_name := 'materialized_view_unique_index';
        object_name := r.relname;
        IF EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = r.oid AND i.indisunique AND i.indisvalid
                      AND i.indpred IS NULL AND i.indexprs IS NULL) THEN
            status := 'passed';  details := NULL;
        ELSE
            status := 'warning'; details := 'no plain unique index: REFRESH ... CONCURRENTLY is impossible';
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION validate_schema_integrity() IS
    'Integrity report: expected tables, FK orphans (every FK), NOT VALID constraints, partition DEFAULT/coverage, materialized views. status: passed | warning | failed.';


CREATE FUNCTION backup_critical_data()
RETURNS TABLE (source_table text, backup_table text, rows_copied bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $fn$
#variable_conflict use_column
DECLARE
    critical text[] := ARRAY[
        'schema_migrations', 'ml_models', 'training_datasets', 'model_training_sessions', 'model_evaluations',
        'feature_store', 'evolution_experiments', 'evolution_generations', 'evolution_individuals',
        'identified_patterns', 'recommendations', 'ab_testing_experiments', 'data_quality_checks'];
    present   text[];
    stamp     text;
    t         text;
    target    text;
    copied    bigint;
    src_count bigint;
    dst_count bigint;
    tries     integer := 0;
BEGIN
    IF to_regnamespace('pgtender_backup') IS NULL THEN
        CREATE SCHEMA IF NOT EXISTS pgtender_backup;
    END IF;

    SELECT coalesce(array_agg(u.x ORDER BY u.ord), '{}')
      INTO present
      FROM unnest(critical) WITH ORDINALITY AS u(x, ord)
     WHERE to_regclass(format('public.%I', u.x)) IS NOT NULL;

    -- Writers are blocked while we copy, so counts are stable (readers are not).
    FOREACH t IN ARRAY present LOOP
        EXECUTE format('LOCK TABLE public.%I IN SHARE MODE', t);
    END LOOP;

    -- One timestamp suffix for the whole set; wait for the next second if that set already exists.
    LOOP
        stamp := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS');
        EXIT WHEN NOT EXISTS (
            SELECT 1 FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
             WHERE ns.nspname = 'pgtender_backup'
               AND c.relname IN (SELECT x || '_' || stamp FROM unnest(present) AS x));
        tries := tries + 1;
        IF tries > 20 THEN
            RAISE EXCEPTION 'backup_critical_data: backup tables with suffix % already exist', stamp;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;

    FOREACH t IN ARRAY present LOOP
        target := t || '_' || stamp;
        IF length(target) > 63 THEN
            RAISE EXCEPTION 'backup_critical_data: backup name % is longer than 63 bytes', target;
        END IF;
        EXECUTE format('CREATE TABLE pgtender_backup.%I AS TABLE public.%I', target, t);
        GET DIAGNOSTICS copied = ROW_COUNT;
        EXECUTE format('SELECT count(*) FROM public.%I', t) INTO src_count;
        EXECUTE format('SELECT count(*) FROM pgtender_backup.%I', target) INTO dst_count;
        IF copied <> src_count OR dst_count <> src_count THEN
            RAISE EXCEPTION 'backup_critical_data: % copied % row(s) (backup holds %) but the source has %',
                            t, copied, dst_count, src_count;
        END IF;
        EXECUTE format('COMMENT ON TABLE pgtender_backup.%I IS %L', target,
                       format('pgtender backup of public.%s taken %s (%s rows)', t,
                              to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), src_count));
        source_table := t;
        backup_table := target;  -- in schema pgtender_backup
        rows_copied := copied;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION backup_critical_data() IS
    'Copies the critical tables into pgtender_backup.<table>_<YYYYMMDDHH24MISS> (UTC) and verifies the row counts; backup_table is the name inside schema pgtender_backup.';


CREATE FUNCTION rollback_schema_version(target_version integer)
RETURNS TABLE (version integer, name text)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    r        record;
    missing  integer[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgtender.migrate'));

    IF target_version IS NULL THEN
        RAISE EXCEPTION 'rollback_schema_version: target_version must not be NULL';
    END IF;
    IF target_version < 8 THEN
        RAISE EXCEPTION 'rollback_schema_version: cannot roll back below version 8 (requested %): version 8 defines this function; use "pgtender rollback --to %" instead',
                        target_version, target_version;
    END IF;

    SELECT array_agg(sm.version ORDER BY sm.version DESC)
      INTO missing
      FROM schema_migrations sm
     WHERE sm.version > target_version
       AND (sm.down_sql IS NULL OR btrim(sm.down_sql) = '');
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'rollback_schema_version: no down_sql recorded for version(s) %; nothing was rolled back', missing;
    END IF;

    FOR r IN
        SELECT sm.version AS v, sm.name AS n, sm.down_sql AS d
          FROM schema_migrations sm
         WHERE sm.version > target_version
         ORDER BY sm.version DESC
    LOOP
        EXECUTE r.d;
        DELETE FROM schema_migrations sm WHERE sm.version = r.v;
        version := r.v;
        name := r.n;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION rollback_schema_version(integer) IS
    'Runs the recorded down_sql of every applied version > target (newest first) and forgets it; target must be >= 8.';


CREATE FUNCTION migrate_existing_data()
RETURNS TABLE (step text, rows_affected bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $fn$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgtender.migrate_existing_data'));

    -- Mirrored learning events reuse the source row's id, which makes the backfill idempotent
    -- (a row is mirrored once, even if a previous run inserted the event but not the link).
    INSERT INTO learning_events (id, occurred_at, ingested_at, event_type, source, session_id, user_id, payload)
    SELECT g.id, g.occurred_at, greatest(g.created_at, g.occurred_at), 'git_' || g.operation, 'git',
           -- git has no sessions: one synthetic work session per repository, author and UTC day
           md5('git:' || g.repository || ':' || coalesce(g.author, '') || ':'
               || to_char(g.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'))::uuid,
           g.author,
           jsonb_build_object('git_operation_id', g.id, 'repository', g.repository, 'branch', g.branch,
                              'commit_sha', g.commit_sha, 'files_changed', g.files_changed,
                              'lines_added', g.lines_added, 'lines_deleted', g.lines_deleted,
                              'duration_ms', g.duration_ms, 'success', g.success)
      FROM git_operation_learning_events g
     WHERE g.learning_event_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM learning_events e WHERE e.id = g.id AND e.occurred_at = g.occurred_at);
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'git_operation_learning_events -> learning_events'; rows_affected := n; RETURN NEXT;

    UPDATE git_operation_learning_events g
       SET learning_event_id = g.id, learning_event_at = g.occurred_at
     WHERE g.learning_event_id IS NULL
       AND EXISTS (SELECT 1 FROM learning_events e WHERE e.id = g.id AND e.occurred_at = g.occurred_at);
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'git_operation_learning_events: link learning_event_id'; rows_affected := n; RETURN NEXT;

    INSERT INTO learning_events (id, occurred_at, ingested_at, event_type, source, session_id, user_id, payload)
    SELECT s.id, s.session_start, greatest(s.created_at, s.session_start), 'user_session', 'user_session',
           s.session_id, s.user_id,
           jsonb_build_object('user_session_event_id', s.id, 'session_end', s.session_end,
                              'duration_seconds', coalesce(s.duration_seconds, EXTRACT(EPOCH FROM (s.session_end - s.session_start))),
                              'actions_count', s.actions_count, 'features_used', to_jsonb(s.features_used),
                              'client', s.client, 'outcome', s.outcome, 'satisfaction_score', s.satisfaction_score)
      FROM user_session_learning_events s
     WHERE s.learning_event_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM learning_events e WHERE e.id = s.id AND e.occurred_at = s.session_start);
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'user_session_learning_events -> learning_events'; rows_affected := n; RETURN NEXT;

    UPDATE user_session_learning_events s
       SET learning_event_id = s.id, learning_event_at = s.session_start
     WHERE s.learning_event_id IS NULL
       AND EXISTS (SELECT 1 FROM learning_events e WHERE e.id = s.id AND e.occurred_at = s.session_start);
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'user_session_learning_events: link learning_event_id'; rows_affected := n; RETURN NEXT;

    UPDATE user_session_learning_events s
       SET duration_seconds = EXTRACT(EPOCH FROM (s.session_end - s.session_start))
     WHERE s.duration_seconds IS NULL AND s.session_end IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'user_session_learning_events: fill duration_seconds'; rows_affected := n; RETURN NEXT;

    UPDATE evolution_individuals i
       SET experiment_id = g.experiment_id, updated_at = now()
      FROM evolution_generations g
     WHERE g.id = i.generation_id AND i.experiment_id IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'evolution_individuals: fill experiment_id'; rows_affected := n; RETURN NEXT;

    UPDATE evolution_generations g
       SET population_size = s.cnt, best_fitness = s.best, avg_fitness = s.avg_f,
           worst_fitness = s.worst, fitness_stddev = s.sd
      FROM (SELECT i.generation_id, count(*)::integer AS cnt, max(i.fitness_score) AS best,
                   avg(i.fitness_score) AS avg_f, min(i.fitness_score) AS worst,
                   coalesce(stddev_pop(i.fitness_score), 0) AS sd
              FROM evolution_individuals i
             GROUP BY i.generation_id) s
     WHERE s.generation_id = g.id
       AND (g.population_size IS NULL OR g.best_fitness IS NULL)
       AND s.best IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'evolution_generations: fill fitness statistics'; rows_affected := n; RETURN NEXT;

    UPDATE evolution_experiments x
       SET best_fitness = s.best, updated_at = now()
      FROM (SELECT i.experiment_id, max(i.fitness_score) AS best
              FROM evolution_individuals i
             WHERE i.experiment_id IS NOT NULL
             GROUP BY i.experiment_id) s
     WHERE s.experiment_id = x.id AND x.best_fitness IS NULL AND s.best IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'evolution_experiments: fill best_fitness'; rows_affected := n; RETURN NEXT;

    UPDATE identified_patterns p
       SET occurrence_count = s.cnt, last_detected_at = s.last_at, updated_at = now()
      FROM (SELECT o.pattern_id, count(*) AS cnt, max(o.detected_at) AS last_at
              FROM pattern_occurrences o
             GROUP BY o.pattern_id) s
     WHERE s.pattern_id = p.id
       AND (p.occurrence_count IS DISTINCT FROM s.cnt OR p.last_detected_at IS DISTINCT FROM s.last_at);
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'identified_patterns: occurrence_count, last_detected_at'; rows_affected := n; RETURN NEXT;

    UPDATE predictions pr
       SET is_correct = (pr.predicted_value -> 'label') = (pr.actual_value -> 'label')
     WHERE pr.is_correct IS NULL
       AND pr.actual_value ? 'label' AND pr.predicted_value ? 'label';
    GET DIAGNOSTICS n = ROW_COUNT;
    step := 'predictions: derive is_correct from labels'; rows_affected := n; RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION migrate_existing_data() IS
    'Idempotent backfill: mirrors git/user-session records into learning_events (same id) and links them back; fills derived columns. A second run affects 0 rows.';

-- Mutating maintenance functions are not for PUBLIC (0009 grants them to pgtender_maintainer);
-- validate_schema_integrity() is read-only and stays executable by everyone.
REVOKE EXECUTE ON FUNCTION backup_critical_data() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION rollback_schema_version(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate_existing_data() FROM PUBLIC;
