from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from flows.core import db, migrations
from flows.core.errors import ConfigError
from flows.core.policy.settings import DatabasePolicy
from tests.catalog import fingerprint
from tests.conftest import Database

EXPECTED_TABLES = {
    "ml_models",
    "training_datasets",
    "model_training_sessions",
    "model_evaluations",
    "feature_store",
    "evolution_experiments",
    "evolution_generations",
    "evolution_individuals",
    "code_evaluations",
    "llm_interactions",
    "identified_patterns",
    "pattern_occurrences",
    "predictions",
    "recommendations",
    "ab_testing_experiments",
    "learning_events",
    "system_performance_metrics",
    "query_performance_logs",
    "resource_utilization",
    "capacity_planning_metrics",
    "schema_migrations",
    "git_operation_learning_events",
    "user_session_learning_events",
    "data_quality_checks",
    "pgtender_operations",
}


def _tables(conn) -> set[str]:
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p') AND NOT relispartition"
    ).fetchall()
    return {r[0] for r in rows}


def test_migrate_creates_every_table_and_records_checksums(empty_db: Database) -> None:
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        steps = migrations.migrate(conn)
        assert [s.direction for s in steps] == ["up"] * len(migrations.discover())
        assert _tables(conn) >= EXPECTED_TABLES
        rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in migrations.discover()]
    assert [r[1] for r in rows] == [m.checksum for m in migrations.discover()]


def test_up_down_up_round_trip_leaves_identical_catalog(empty_db: Database) -> None:
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        empty = fingerprint(conn)
        migrations.migrate(conn)
        first = fingerprint(conn)
        steps = migrations.rollback(conn, 0)
        assert [s.direction for s in steps] == ["down"] * len(migrations.discover())
        assert fingerprint(conn) == empty
        migrations.migrate(conn)
        assert fingerprint(conn) == first


def test_partial_rollback_and_forward_again(empty_db: Database) -> None:
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        migrations.migrate(conn, 3)
        at_three = fingerprint(conn)
        migrations.migrate(conn)
        migrations.rollback(conn, 3)
        assert fingerprint(conn) == at_three
        assert [r.version for r in migrations.applied(conn)] == [1, 2, 3]


def test_dry_run_changes_nothing(empty_db: Database) -> None:
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        before = fingerprint(conn)
        steps = migrations.migrate(conn, dry_run=True)
        assert len(steps) == len(migrations.discover())
        assert fingerprint(conn) == before
        migrations.migrate(conn)
        applied = fingerprint(conn)
        steps = migrations.rollback(conn, 0, dry_run=True)
        assert [s.migration.version for s in steps] == sorted(
            (m.version for m in migrations.discover()), reverse=True
        )
        assert fingerprint(conn) == applied


def test_changed_applied_file_is_refused(empty_db: Database, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.discover()[0].up_path.parent, directory)
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        migrations.migrate(conn, 2, directory=directory)
        up = directory / "0002_learning_models.up.sql"
        up.write_text(up.read_text() + "\n-- tampered\n")
        before = fingerprint(conn)
        with pytest.raises(ConfigError, match=r"0002_learning_models was changed after it was applied"):
            migrations.migrate(conn, directory=directory)
        assert fingerprint(conn) == before


def test_failed_step_rolls_back_alone(empty_db: Database, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    source = migrations.discover()[0]
    shutil.copy(source.up_path, directory / source.up_path.name)
    shutil.copy(source.down_path, directory / source.down_path.name)
    (directory / "0002_broken.up.sql").write_text("CREATE TABLE half_done (id int);\nSELECT 1/0;\n")
    (directory / "0002_broken.down.sql").write_text("DROP TABLE half_done;\n")
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        with pytest.raises(Exception, match="division by zero"):
            migrations.migrate(conn, directory=directory)
        assert [r.version for r in migrations.applied(conn)] == [1]
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)


def test_two_migrators_at_once_do_not_interleave(empty_db: Database) -> None:
    results: list[list[migrations.Step]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            with db.connect(empty_db.dsn, autocommit=True) as conn:
                barrier.wait()
                results.append(migrations.migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    ran = sorted(len(r) for r in results)
    assert ran == [0, len(migrations.discover())]
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        count = conn.execute("SELECT count(*), count(DISTINCT version) FROM schema_migrations").fetchone()
    assert count == (len(migrations.discover()), len(migrations.discover()))


def test_a_second_migrator_waits_longer_than_lock_timeout(empty_db: Database) -> None:
    """lock_timeout bounds DDL beside the application's writes, not the wait for another migrator:
    a migrator that holds the lock for longer than it does not make the second one fail."""
    holder = db.connect(empty_db.dsn, autocommit=True)
    holder.execute(migrations.LOCK_SQL)
    released = threading.Event()

    def release_after_the_waiter_queued() -> None:
        with db.connect(empty_db.dsn, autocommit=True) as watcher:
            for _ in range(600):  # the waiter is queued on the advisory lock (no timing assumed)
                if watcher.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ).fetchone()[0]:
                    break
                released.wait(0.05)
        released.wait(0.3)  # beyond the waiter's 100 ms lock_timeout
        holder.execute(migrations.UNLOCK_SQL)
        holder.close()

    thread = threading.Thread(target=release_after_the_waiter_queued)
    thread.start()
    try:
        with db.connect(empty_db.dsn, policy=DatabasePolicy(lock_timeout_ms=100), autocommit=True) as conn:
            steps = migrations.migrate(conn)
    finally:
        thread.join(timeout=60)
    assert len(steps) == len(migrations.discover())


def test_rollback_target_above_current_is_bad_input(migrated_db: Database) -> None:
    with (
        db.connect(migrated_db.dsn, autocommit=True) as conn,
        pytest.raises(ConfigError, match="cannot roll back"),
    ):
        migrations.rollback(conn, 999)


def test_unknown_applied_version_is_refused(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', repeat('a', 64))"
        )
        with pytest.raises(ConfigError, match=r"9999 .*does not know"):
            migrations.migrate(conn)


def test_0013_ledger_outcomes_round_trip_keeps_every_row(migrated_db: Database) -> None:
    """0013 adds the 'rejected' and 'interrupted' statuses and the process id; rolled back, such
    rows are kept as 'failed' (their error says what they were), and forward again they fit."""
    import psycopg

    assert migrations.newest_version() >= 13
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgtender_operations (job, status, started_at, finished_at, error, process_id) VALUES"
            " ('views', 'rejected', now(), now(), 'bad input', 4242),"
            " ('views', 'interrupted', now(), now(), 'interrupted (SIGTERM)', 4243),"
            " ('views', 'completed', now(), now(), NULL, 4244)"
        )
        migrations.rollback(conn, 12)
        assert conn.execute(
            "SELECT status, error FROM pgtender_operations ORDER BY error NULLS LAST"
        ).fetchall() == [("failed", "bad input"), ("failed", "interrupted (SIGTERM)"), ("completed", None)]
        assert conn.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'pgtender_operations' AND column_name = 'process_id'"
        ).fetchone() == (0,)
        with pytest.raises(psycopg.errors.CheckViolation, match="pgtender_operations_status_check"):
            conn.execute(
                "INSERT INTO pgtender_operations (job, status, finished_at) VALUES ('views', 'rejected', now())"
            )
        migrations.migrate(conn)
        conn.execute(
            "INSERT INTO pgtender_operations (job, status, finished_at, process_id)"
            " VALUES ('views', 'interrupted', now(), 1)"
        )
        assert conn.execute("SELECT count(*) FROM pgtender_operations").fetchone() == (4,)
