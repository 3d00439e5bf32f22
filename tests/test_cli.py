from __future__ import annotations

from pathlib import Path

import pytest

from flows.core import migrations
from flows.edge.cli import main
from tests.catalog import fingerprint
from tests.conftest import Database, human_lines, run_pgtender


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_migrate_status_rollback_commands(empty_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    latest = migrations.discover()[-1]
    code, out, _ = run_cli(["migrate", "--dry-run"], capsys)
    assert code == 0
    assert f"would run   up {latest.version:04d} {latest.name}" in out
    assert empty_db.scalar("SELECT to_regclass('schema_migrations')") is None

    code, out, _ = run_cli(["migrate"], capsys)
    assert code == 0 and f"ran   up {latest.version:04d}" in out
    code, out, _ = run_cli(["status"], capsys)
    assert code == 0
    assert f"version {latest.version} of {latest.version}" in out
    assert "0001  applied" in out

    code, out, _ = run_cli(["rollback", "--to", "0"], capsys)
    assert code == 0 and "ran down 0001 migration_infrastructure" in out
    code, out, _ = run_cli(["status"], capsys)
    assert "version 0 of" in out and "0001  pending" in out


def test_bad_config_file_exits_2_with_one_line(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pgtender.toml"
    config.write_text("[database]\nlock_timeout_ms = 100\nlock_timeot_ms = 5\n")
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    with migrated_db.connect() as conn:
        before = fingerprint(conn)
    code, _out, err = run_cli(["migrate"], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "database.lock_timeot_ms" in err and "Extra inputs are not permitted" in err
    with migrated_db.connect() as conn:
        assert fingerprint(conn) == before


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[database\n", "not valid TOML"),
        ("[database]\nlock_timeout_ms = -1\n", "database.lock_timeout_ms"),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ],
)
def test_malformed_configs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str,
    needle: str,
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    monkeypatch.setenv("PGTENDER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    code, _, err = run_cli(["status"], capsys)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_missing_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGTENDER_CONFIG", str(tmp_path / "nope.toml"))
    code, _, err = run_cli(["status"], capsys)
    assert code == 2 and "does not exist" in err


def test_malformed_dsn_exits_2_and_masks_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGTENDER_DATABASE_URL", "postgresql://admin:hunter2@127.0.0.1:5432/db?bogus_option=1")
    code, out, err = run_cli(["status"], capsys)
    assert code == 2
    assert "hunter2" not in out + err
    assert len(err.strip().splitlines()) == 1


def test_missing_database_exits_2_and_masks_password(
    server_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from psycopg import conninfo

    dsn = conninfo.make_conninfo(server_dsn, dbname="pgtender_no_such_db", password="s3cr3t-pw")
    monkeypatch.setenv("PGTENDER_DATABASE_URL", dsn)
    code, out, err = run_cli(["status"], capsys)
    assert code == 2
    assert "s3cr3t-pw" not in out + err
    # the target is named, never located: libpq's quote of the database name is not shown
    assert "cannot connect to target 'default'" in err and "the database does not exist" in err
    assert "pgtender_no_such_db" not in err


def test_unreachable_server_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGTENDER_DATABASE_URL", "postgresql://u:topsecret@127.0.0.1:1/x")
    code, out, err = run_cli(["status"], capsys)
    assert code == 3
    assert "topsecret" not in out + err
    assert "cannot connect to target 'default'" in err and "Connection refused" in err
    assert "127.0.0.1" not in err and "port 1" not in err


def test_unknown_job_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["run", "no-such-job"], capsys)
    assert code == 2 and "No such command 'no-such-job'" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(["rollback"], capsys)
    assert code == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "quality", "--day", "2026-02-30"], "day: Input should be a valid date"),
        (["run", "quality", "--suite", "no_such_suite"], "unknown quality suite"),
        (["run", "report", "--week", "2026-W77"], "does not exist"),
        (["run", "capacity", "--week", "2026-W01"], "No such option: --week"),
    ],
)
def test_bad_job_input_is_rejected_before_any_flow_run(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and (len(human_lines(err)) == 1 or "Usage:" in err)  # never started


def test_unreachable_prefect_api_is_one_line_and_exit_3(migrated_db: Database, tmp_path: Path) -> None:
    """No 138-line traceback and no exit 1 ("found problems"): the API is infrastructure."""
    import os

    env = {
        **os.environ,
        "PGTENDER_DATABASE_URL": migrated_db.dsn,
        "PREFECT_API_URL": "http://127.0.0.1:1/api",
        "PGTENDER_STATE_DIR": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    done = run_pgtender(["run", "health"], env, timeout=120)
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "Prefect API at http://127.0.0.1:1/api" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    with migrated_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pgtender_operations").fetchone() == (0,)  # nothing ran


def test_an_api_without_the_deployment_runs_the_job_here(
    migrated_db: Database,
    bare_prefect_api: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API that serves no pgtender deployment: the job runs here, plainly (one warning says so),
    and ends like any other run."""
    monkeypatch.setenv("PREFECT_API_URL", bare_prefect_api)
    code, out, err = run_cli(["run", "capacity"], capsys)
    assert code == 0 and out.startswith("capacity: done:"), (out, err)
    assert human_lines(out) == [out.strip()]
    with migrated_db.connect() as conn:
        assert conn.execute(
            "SELECT status, flow_run_id FROM pgtender_operations WHERE job = 'capacity'"
        ).fetchall() == [("completed", None)]
