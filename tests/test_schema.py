from __future__ import annotations

import psycopg
import pytest

from flows.core import db, migrations
from tests.conftest import Database

PARTITIONED = {"learning_events": "occurred_at", "system_performance_metrics": "recorded_at"}


@pytest.mark.calendar
def test_partitioned_tables_have_default_and_current_partitions(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        for table, column in PARTITIONED.items():
            key = conn.execute("SELECT pg_get_partkeydef(%s::regclass)", (table,)).fetchone()[0]
            assert key == f"RANGE ({column})"
            default = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
                (table,),
            ).fetchall()
            assert default == [(f"{table}_default",)]
            current = conn.execute(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = %s::regclass AND c.relname = %s || '_p' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC'), 'YYYYMMDD')",
                (table, table),
            ).fetchone()[0]
            assert current == 1


def test_every_materialized_view_can_refresh_concurrently(demo_db: Database) -> None:
    with demo_db.connect() as conn:
        views = [
            r[0] for r in conn.execute("SELECT matviewname FROM pg_matviews WHERE schemaname = 'public'")
        ]
        assert len(views) >= 3
        for view in views:
            unique = conn.execute(
                "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisunique AND indpred IS NULL",
                (view,),
            ).fetchone()[0]
            assert unique >= 1, view
            conn.execute(
                psycopg.sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(
                    psycopg.sql.Identifier(view)
                )
            )
            assert (
                conn.execute(
                    psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(view))
                ).fetchone()[0]
                > 0
            )


def test_demo_data_rolls_up_every_loaded_day(demo_db: Database) -> None:
    """The views job recomputes only the trailing days, so a bulk load rolls up its whole history."""
    with demo_db.connect() as conn:
        by_day = conn.execute(
            "SELECT (occurred_at AT TIME ZONE 'UTC')::date, count(*) FROM learning_events GROUP BY 1 ORDER BY 1"
        ).fetchall()
        rolled = conn.execute(
            "SELECT day, sum(event_count) FROM mv_daily_learning_events GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert len(by_day) >= 14 and rolled == by_day


def test_seed_readme_examples_work(migrated_db: Database) -> None:
    with migrated_db.connect() as conn, conn.transaction():
        model = conn.execute(
            "INSERT INTO ml_models (name, version, model_type, framework, hyperparameters)"
            " VALUES ('pattern_classifier', 'v1.0', 'pattern_recognition', 'scikit-learn',"
            ' \'{"n_estimators": 100, "max_depth": 10}\') RETURNING id'
        ).fetchone()[0]
        dataset = conn.execute(
            "INSERT INTO training_datasets (name) VALUES ('commits-2026') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO model_training_sessions (model_id, dataset_id, total_epochs) VALUES (%s, %s, 50)",
            (model, dataset),
        )
        conn.execute(
            "INSERT INTO predictions (model_id, prediction_type, target_entity_type, predicted_value, confidence_interval)"
            " VALUES (%s, 'bug_likelihood', 'code_file', '{\"probability\": 0.85}', '{\"lower\": 0.80, \"upper\": 0.90}')",
            (model,),
        )
        experiment = conn.execute(
            "INSERT INTO evolution_experiments (name, problem_definition, objective_function)"
            " VALUES ('optimize_sorting', '{\"problem\": \"optimize sorting algorithm\"}',"
            ' \'{"metrics": ["execution_time", "memory_usage"]}\') RETURNING id'
        ).fetchone()[0]
        generation = conn.execute(
            "INSERT INTO evolution_generations (experiment_id, generation_number) VALUES (%s, 1) RETURNING id",
            (experiment,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO evolution_individuals (generation_id, genotype, phenotype, fitness_score)"
            ' VALUES (%s, \'{"params": {"algorithm": "quicksort"}}\', \'def quicksort(arr): ...\', 0.92)',
            (generation,),
        )
        pattern = conn.execute(
            "INSERT INTO identified_patterns (pattern_type, pattern_name, confidence_score)"
            " VALUES ('code_smell', 'long_method', 0.95) RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO pattern_occurrences (pattern_id, source_type, source_id, location_data)"
            ' VALUES (%s, \'code_file\', \'file123\', \'{"file": "utils.py", "line_start": 45, "line_end": 120}\')',
            (pattern,),
        )


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO identified_patterns (pattern_type, pattern_name, confidence_score) VALUES ('code_smell', 'x', 1.5)",
        "INSERT INTO llm_interactions (model_name, prompt_tokens, completion_tokens, cost_usd) VALUES ('m', -1, 0, 0)",
        "INSERT INTO data_quality_checks (check_name, target, window_start, window_end, status)"
        " VALUES ('c', 't', now(), now() - interval '1 day', 'passed')",
        "INSERT INTO data_quality_checks (check_name, target, window_start, window_end, status)"
        " VALUES ('c', 't', now(), now(), 'great')",
    ],
)
def test_check_constraints_reject_bad_rows(migrated_db: Database, statement: str) -> None:
    with migrated_db.connect() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(statement)


def test_demo_data_passes_integrity_validation(demo_db: Database) -> None:
    with demo_db.connect() as conn:
        rows = conn.execute(
            "SELECT check_name, object_name, status, details FROM validate_schema_integrity()"
        ).fetchall()
    assert rows
    failed = [r for r in rows if r[2] == "failed"]
    assert failed == []


def test_validate_schema_integrity_finds_planted_orphan(demo_db: Database) -> None:
    with demo_db.connect() as conn:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(
                "INSERT INTO pattern_occurrences (pattern_id, source_type, source_id)"
                " VALUES ('00000000-0000-0000-0000-00000000dead', 'code_file', 'orphan.py')"
            )
        rows = conn.execute(
            "SELECT check_name, object_name, status, details FROM validate_schema_integrity() WHERE status = 'failed'"
        ).fetchall()
    assert len(rows) == 1
    assert "pattern_occurrences" in rows[0][1]
    assert "1" in rows[0][3]


def test_backup_critical_data_copies_exact_counts(demo_db: Database) -> None:
    with demo_db.connect() as conn:
        rows = conn.execute(
            "SELECT source_table, backup_table, rows_copied FROM backup_critical_data()"
        ).fetchall()
        assert {r[0] for r in rows} >= {"ml_models", "evolution_experiments", "identified_patterns"}
        for source, backup, copied in rows:
            source_count = conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(source))
            ).fetchone()[0]
            backup_count = conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {}").format(
                    psycopg.sql.Identifier("pgtender_backup", backup)
                )
            ).fetchone()[0]
            assert source_count == backup_count == copied


def test_migrate_existing_data_is_idempotent(demo_db: Database) -> None:
    with demo_db.connect() as conn:
        first = conn.execute("SELECT step, rows_affected FROM migrate_existing_data()").fetchall()
        events = conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
        second = conn.execute("SELECT step, rows_affected FROM migrate_existing_data()").fetchall()
        assert conn.execute("SELECT count(*) FROM learning_events").fetchone()[0] == events
    assert first and all(n == 0 for _, n in second)


def test_rollback_schema_version_from_sql(migrated_db: Database) -> None:
    latest = migrations.discover()[-1].version
    with migrated_db.connect() as conn:
        undone = conn.execute("SELECT version FROM rollback_schema_version(8)").fetchall()
        assert [r[0] for r in undone] == list(range(latest, 8, -1))
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 8
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("SELECT * FROM rollback_schema_version(2)")
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        steps = migrations.migrate(conn)
    assert [s.migration.version for s in steps] == list(range(9, latest + 1))


def test_roles_are_least_privilege(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:

        def has(role: str, table: str, privilege: str) -> bool:
            return bool(
                conn.execute("SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)).fetchone()[0]
            )

        assert has("pgtender_checker", "learning_events", "SELECT")
        assert not has("pgtender_checker", "learning_events", "DELETE")
        assert not has("pgtender_checker", "ml_models", "UPDATE")
        assert has("pgtender_maintainer", "learning_events", "DELETE")
        assert has("pgtender_maintainer", "capacity_planning_metrics", "INSERT")
