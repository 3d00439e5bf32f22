"""Issue 12.7 (connecting) and 12.8: bad credentials and bad options are bad input (exit 2, one
line, at once), whichever command meets them first; an empty PGTENDER_CONFIG means no file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from flows.core import db
from flows.core.errors import ConfigError
from flows.core.policy import settings
from tests import embedded_pg
from tests.conftest import Database, human_lines
from tests.test_cli import run_cli

PASSWORD = "right-Pw-42"


@pytest.fixture(scope="module")
def scram_server() -> Iterator[str]:
    """A PostgreSQL server of our own that checks passwords (the shared test server trusts everyone).
    Returns its DSN without a password."""
    with embedded_pg.home("scram") as home:
        pgdata = home / "pg"
        server = embedded_pg.start(pgdata)
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
        (pgdata / "pg_hba.conf").write_text("local all all scram-sha-256\n")
        server.cleanup()  # a restart reads pg_hba.conf: no reload to wait for
        server = embedded_pg.start(pgdata)
        yield server.get_uri()
        db.close_pools()
        server.cleanup()


def _with_password(dsn: str, password: str) -> str:
    return conninfo.make_conninfo(dsn, password=password)


def test_the_server_really_checks_passwords(scram_server: str) -> None:
    with db.connect(_with_password(scram_server, PASSWORD)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("command", [["status"], ["run", "capacity"], ["run", "retention", "--dry-run"]])
def test_wrong_password_is_exit_2_in_one_line(
    command: list[str], scram_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGTENDER_DATABASE_URL", _with_password(scram_server, "wrong-Pw-99"))
    code, out, err = run_cli(command, capsys)
    assert code == 2
    assert len(human_lines(err)) == 1, err
    assert "password authentication failed" in err
    assert "wrong-Pw-99" not in out + err


def test_pool_refuses_a_wrong_password_at_once(scram_server: str) -> None:
    """The flows borrow from the pool: it must not retry a wrong password for 30 s (PoolTimeout,
    exit 3) but say so (ConfigError) on the first borrow."""
    bad = _with_password(scram_server, "wrong-Pw-99")
    with pytest.raises(ConfigError, match="password authentication failed"), db.pooled(bad):
        pass
    assert (bad, "pgtender") not in db._pools  # no pool left retrying in the background
    with db.pooled(_with_password(scram_server, PASSWORD)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("sslmode=bogus", "invalid sslmode value"),
        ("target_session_attrs=nonsense", "invalid target_session_attrs value"),
        ("bogus_option=1", "invalid URI query parameter"),
    ],
)
def test_bad_connection_options_are_exit_2(
    option: str,
    needle: str,
    migrated_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = conninfo.conninfo_to_dict(migrated_db.dsn)
    url = (
        f"postgresql://{server.get('user', 'postgres')}@{server.get('host', '127.0.0.1')}:"
        f"{server.get('port', 5432)}/{migrated_db.name}?{option}"
    )
    monkeypatch.setenv("PGTENDER_DATABASE_URL", url)
    code, _, err = run_cli(["status"], capsys)
    assert code == 2, err
    assert needle in err and len(human_lines(err)) == 1


def test_empty_pgtender_config_means_no_file(
    migrated_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGTENDER_CONFIG", "")
    assert settings.load_settings().config is None
    assert settings.current_policy() == settings.Policy()
    code, out, err = run_cli(["status"], capsys)
    assert code == 0, err
    assert "version" in out


def test_blank_pgtender_config_means_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGTENDER_CONFIG", "   ")
    assert settings.load_settings().config is None
    monkeypatch.setenv("PGTENDER_CONFIG", str(tmp_path / "p.toml"))
    assert settings.load_settings().config == tmp_path / "p.toml"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('[partitions.tables.learning_events]\npremake = "3"\n', "partitions.tables.learning_events.premake"),
        (
            '[partitions.tables.learning_events]\nenabled = "yes"\n',
            "partitions.tables.learning_events.enabled",
        ),
        ('[database]\nlock_timeout_ms = "100"\n', "database.lock_timeout_ms"),
        ("[database]\nlock_timeout_ms = 1.5\n", "database.lock_timeout_ms"),
        ('[quality]\nthreshold = "90"\n', "quality.threshold"),
        ('[retention]\nmax_seconds = "600"\n', "retention.max_seconds"),
        ('[views]\ninclude = "mv_x"\n', "views.include"),
    ],
)
def test_policy_values_of_the_wrong_type_are_rejected(
    content: str,
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "policy.toml"
    config.write_text(content)
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    code, _, err = run_cli(["status"], capsys)
    assert code == 2
    assert where in err and len(human_lines(err)) == 1


def test_policy_arrays_paths_and_whole_numbers_still_read(tmp_path: Path) -> None:
    config = tmp_path / "policy.toml"
    config.write_text(
        '[views]\ninclude = ["mv_a", "mv_b"]\n[health]\nevent_lag_max_seconds = 300\naccuracy_metrics = ["f1"]\n'
        '[report]\nrecipients = ["a@example.org"]\n[retention]\ndump_dir = "/var/lib/pgtender/archive"\n'
    )
    policy = settings.load_policy(config)
    assert policy.views.include == ("mv_a", "mv_b")
    assert policy.health.event_lag_max_seconds == 300.0
    assert policy.health.accuracy_metrics == ("f1",)
    assert policy.report.recipients == ("a@example.org",)
    assert policy.retention.dump_dir == "/var/lib/pgtender/archive"  # a path or an object-store URL
