"""Issue 26.1: a rollback that would drop tables holding rows refuses unless --drop-data, which
dumps them (verified) first; the dump restores the rows after migrating up again."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from flows.core import db, drop_guard, migrations
from flows.core.archives.store import LocalStore
from flows.core.ddl import RowCountMismatch
from flows.core.drop_permit import DataLossRefused, DropData
from tests.conftest import Database
from tests.test_cli import run_cli

TABLES = """
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
 ORDER BY 1
"""


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Every table and partition of public with its exact row count."""
    out = {}
    for (name,) in conn.execute(TABLES).fetchall():
        out[name] = conn.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(name))
        ).fetchone()[0]
    return out


def tree_count(conn: psycopg.Connection[Any], table: str) -> int:
    return int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0])


def _policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dump_dir: Path) -> None:
    config = tmp_path / "pgtender.toml"
    config.write_text(f'[retention]\ndump_dir = "{dump_dir}"\n')
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))


def _version(conn: psycopg.Connection[Any]) -> int:
    return max((r.version for r in migrations.applied(conn)), default=0)


def test_rollback_to_0_on_demo_data_refuses_and_changes_nothing(
    demo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with demo_db.connect() as conn:
        before, version = table_counts(conn), _version(conn)
        events = tree_count(conn, "learning_events")
    assert events > 0
    code, out, err = run_cli(["rollback", "--to", "0"], capsys)
    assert code == 2, (out, err)
    (line,) = err.strip().splitlines()
    assert "nothing changed" in line and "--drop-data" in line
    assert re.search(rf"learning_events \({events} rows in \d+ partitions\)", line), line
    with demo_db.connect() as conn:
        assert table_counts(conn) == before and _version(conn) == version
    # migrate --to below the current version is the same plan: refused the same way
    code, _, err = run_cli(["migrate", "--to", "4"], capsys)
    assert code == 2 and "would drop" in err
    with demo_db.connect() as conn:
        assert table_counts(conn) == before and _version(conn) == version


def test_dry_run_lists_each_steps_tables_and_rows(
    demo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with demo_db.connect() as conn:
        before = table_counts(conn)
        expected = {t: tree_count(conn, t) for t in ("learning_events", "ml_models", "data_quality_checks")}
        partitions = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'learning_events'::regclass"
        ).fetchone()[0]
    code, out, err = run_cli(["rollback", "--to", "0", "--dry-run"], capsys)
    assert code == 0, err
    steps = re.split(r"(?m)^(?=would run)", out)
    by_step = {s.splitlines()[0]: s for s in steps if s.startswith("would run")}
    assert (
        f"drops learning_events: {expected['learning_events']} rows in {partitions} partitions"
        in (by_step["would run down 0005 analytics_performance"])
    )
    assert f"drops ml_models: {expected['ml_models']} rows" in by_step["would run down 0002 learning_models"]
    assert (
        f"drops data_quality_checks: {expected['data_quality_checks']} rows"
        in (by_step["would run down 0006 integration_migration"])
    )
    assert "drops materialized view" in by_step["would run down 0007 materialized_views"]
    assert "refused without --drop-data" in out
    with demo_db.connect() as conn:
        assert table_counts(conn) == before


def test_drop_data_dumps_verifies_rolls_back_and_the_dump_restores(
    demo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _policy(tmp_path, monkeypatch, tmp_path / "archive")
    with demo_db.connect() as conn:
        before = {t: n for t, n in table_counts(conn).items() if t != "schema_migrations"}
        tops = {
            t: tree_count(conn, t)
            for (t,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " AND relkind IN ('r', 'p') AND NOT relispartition AND relname <> 'schema_migrations'"
            ).fetchall()
        }
    code, out, err = run_cli(["rollback", "--to", "0", "--drop-data"], capsys)
    assert code == 0, err
    found = re.search(r"^dumped (\d+) table\(s\), (\d+) rows, verified, to (\S+)$", out, re.M)
    assert found, out
    folder = Path(found[3])
    assert int(found[2]) == sum(n for n in tops.values()) > 0
    manifests = {json.loads(p.read_text())["table"]: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert {t: m["rows"] for t, m in manifests.items()} == tops  # empty tables too: a whole snapshot
    assert not list(folder.glob("*.partial"))
    with demo_db.connect() as conn:
        assert _version(conn) == 0 and table_counts(conn) == {}
    assert run_cli(["migrate"], capsys)[0] == 0
    code, out, err = run_cli(["restore-dump", str(folder)], capsys)
    assert code == 0, err
    with demo_db.connect() as conn:
        after = {t: tree_count(conn, t) for t in tops}
        assert after == tops
        assert sum(table_counts(conn)[t] for t in before) == sum(before.values())
        conn.execute("INSERT INTO ml_models (name, version, model_type) VALUES ('after', 'v9', 'test')")
    # a second restore of the same folder is refused (the tables hold rows): nothing loaded twice
    code, _, err = run_cli(["restore-dump", str(folder)], capsys)
    assert code == 2 and "already holds" in err


def test_empty_tables_roll_back_without_the_flag(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        assert [s.direction for s in migrations.rollback(conn, 0)] == ["down"] * len(migrations.discover())


def test_rows_written_after_the_check_stop_the_step(
    demo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard's count is re-checked under each step's own lock: a row that arrives after the
    dump stops that step (rolled back) instead of being dropped unseen."""
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        version = _version(conn)
        drop_data = DropData(store=LocalStore(tmp_path / "archive"))
        real = migrations._recount

        def late_insert(c: Any, step: migrations.Step, expected: list[tuple[str, str, int]]) -> None:
            if step.migration.version == 12:
                c.execute(
                    "INSERT INTO pgtender_alert_state (target, check_name, source, state, since, last_seen_at)"
                    " VALUES ('default', 'late', 'health', 'ok', now(), now())"
                )
            real(c, step, expected)

        monkeypatch.setattr(migrations, "_recount", late_insert)
        with pytest.raises(RowCountMismatch, match="pgtender_alert_state holds 1 rows"):
            migrations.rollback(conn, 11, drop_data=drop_data)  # 0013, then 0012 (the alert state)
        assert _version(conn) == 12 == version - 1  # 0013's step went; 0012's stopped, rolled back
        assert conn.execute("SELECT count(*) FROM pgtender_alert_state").fetchone() == (0,)


def test_a_step_that_deletes_rows_from_a_table_that_stays_is_refused(
    empty_db: Database, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    first = migrations.discover()[0]
    for path in (first.up_path, first.down_path):
        (directory / path.name).write_bytes(path.read_bytes())
    (directory / "0002_keep.up.sql").write_text("CREATE TABLE kept (id int);\n")
    (directory / "0002_keep.down.sql").write_text("DROP TABLE kept;\n")
    (directory / "0003_trim.up.sql").write_text("CREATE TABLE log_marker (id int);\n")
    (directory / "0003_trim.down.sql").write_text("DELETE FROM kept WHERE id > 1; DROP TABLE log_marker;\n")
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        migrations.migrate(conn, directory=directory)
        conn.execute("INSERT INTO kept SELECT generate_series(1, 5)")
        (loss,) = migrations.losses(conn, migrations.plan(conn, 2, migrations.discover(directory)))
        assert [(r.name, n) for r, n in loss.lost] == [("kept", 4)]
        assert [(d.relation.name, d.rows) for d in loss.dropped] == [("log_marker", 0)]
        with pytest.raises(DataLossRefused, match="kept \\(loses 4 rows\\)"):
            migrations.migrate(conn, 2, directory=directory, drop_data=DropData(LocalStore(tmp_path / "a")))
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (5,)
        assert _version(conn) == 3


def test_inspection_changes_nothing_and_counts_exactly(demo_db: Database) -> None:
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        before = table_counts(conn)
        steps = migrations.plan(conn, 0)
        losses = migrations.losses(conn, steps)
        assert [loss.version for loss in losses] == [s.migration.version for s in steps]
        assert table_counts(conn) == before
        dropped = {
            d.relation.name: d.rows
            for loss in losses
            for d in loss.dropped
            if d.relation.kind == "r" and d.existed
        }
        assert {k: v for k, v in dropped.items() if k != "schema_migrations"} == {
            k: v for k, v in before.items() if k != "schema_migrations"
        }
        assert isinstance(losses[0], drop_guard.StepLoss)
