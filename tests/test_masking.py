"""Issue 12.1: a password never leaks, whatever characters it holds and however it was given."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import conninfo

from flows.core import db, ledger, masking
from flows.core.engine import Kind
from flows.core.errors import ConfigError, PgtenderError
from flows.core.logs import mask_processor
from tests.conftest import Database, flow_run, verdict_of
from tests.test_cli import run_cli

# Every character class a password can hold (letters, digits, punctuation incl. @ / : % # ? & = ' " \,
# spaces and other separators, control characters, non-ASCII), except NUL (libpq strings end there).
PASSWORDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=masking.MIN_VALUE_LENGTH,
    max_size=24,
)


def _kv_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _forms(server: dict[str, str], password: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(PGTENDER_DATABASE_URL, extra environment) for each way a user can give a password."""
    host, port = server.get("host") or "127.0.0.1", server.get("port") or "5432"
    db_name = "pgtender_no_such_db"
    yield f"postgresql://app:{password}@{host}:{port}/{db_name}", {}  # as typed, not encoded
    yield f"postgresql://app:{quote(password, safe='')}@{host}:{port}/{db_name}", {}
    yield f"host={host} port={port} user=app dbname={db_name} password={_kv_quote(password)}", {}
    yield f"postgresql://app@{host}:{port}/{db_name}", {"PGPASSWORD": password}


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = set(masking._registered)
    yield
    masking._registered.clear()
    masking._registered.update(saved)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(password=PASSWORDS)
def test_generated_passwords_never_leak_and_exit_2(
    password: str,
    migrated_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean_registry: None,
) -> None:
    """Through the CLI (error line), a log record, the ledger and an exception: never the password."""
    server = conninfo.conninfo_to_dict(migrated_db.dsn)
    for url, env in _forms(server, password):
        with monkeypatch.context() as m:
            m.setenv("PGTENDER_DATABASE_URL", url)
            for key, value in env.items():
                m.setenv(key, value)
            code, out, err = run_cli(["status"], capsys)
            # malformed URL or no such database: bad input either way, one line, no password
            assert code == 2, err
            assert len(err.strip().splitlines()) == 1, err
            assert password not in out + err
            record = mask_processor(None, "error", {"event": f"connecting to {url}", "dsn": url})
            assert password not in repr(record)
            with db.connect(migrated_db.dsn, autocommit=True) as conn:
                op = ledger.start_operation(conn, "health")
                ledger.fail_operation(conn, op.operation_id, f"boom at {url}")
                stored = conn.execute(
                    "SELECT error FROM pgtender_operations WHERE operation_id = %s", (op.operation_id,)
                ).fetchone()[0]
            assert password not in stored
            assert password not in str(PgtenderError(f"while using {url}"))


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        # the example: libpq read 'Sekr3t' as the port and 'x@127…' as the database
        ("postgresql://postgres:Sekr3t/x@127.0.0.1:5432/db", ["Sekr3t"]),
        ("postgresql://postgres:Sekr3t@home@127.0.0.1:5432/db", ["Sekr3t", "home@127"]),
        ("postgresql://postgres:1234/5678@127.0.0.1:5432/db", ["1234", "5678"]),
        ("postgresql://postgres:Sekr3t%zz@127.0.0.1:5432/db", ["Sekr3t"]),
        ("postgresql://postgres:Sekr3t with space@127.0.0.1:5432/db", ["Sekr3t", "with space"]),
    ],
)
def test_malformed_url_is_exit_2_and_no_fragment_of_the_password_shows(
    url: str, fragments: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGTENDER_DATABASE_URL", url)
    code, out, err = run_cli(["status"], capsys)
    assert code == 2
    assert "malformed" in err and len(err.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment not in out + err
    with pytest.raises(ConfigError, match="malformed") as info:
        db.connect(url)
    assert not any(f in str(info.value) for f in fragments)


def test_urls_libpq_reads_as_written_are_accepted() -> None:
    for url in (
        "postgresql://app:pa#ss?w:rd@db.internal:5432/analytics",  # libpq ends userinfo at '@' or '/'
        "postgresql://app:p%40ss%2Fword@db.internal/analytics",
        "postgresql://db.internal/analytics?user=me@tenant&sslmode=require",  # '@' in the query
        "postgresql://postgres:@/postgres?host=/tmp/pg",  # unix socket
        "postgresql:///analytics",
        "host=db.internal password='a b@c/d' dbname=analytics",
    ):
        assert masking.malformed_url(url) is None, url


def test_password_candidates_cover_every_reading() -> None:
    raw = "postgresql://app:Sekr3t/x@h:5432/db"
    assert "Sekr3t/x" in masking.password_candidates(raw)
    assert "p@ss/w" in masking.password_candidates("postgresql://app:p%40ss%2Fw@h/db")
    assert "a b'c" in masking.password_candidates(r"host=h password='a b\'c' dbname=d")
    assert "qp4ss" in masking.password_candidates("postgresql://h/db?user=u&password=qp4ss")


def test_pgpassword_and_smtp_password_are_masked_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "env-only-pw")
    monkeypatch.setenv("PGTENDER_SMTP_PASSWORD", "smtp-pw-1")
    text = "PGPASSWORD=env-only-pw; login with smtp-pw-1 failed; value env-only-pw"
    masked = masking.mask_secrets(text)
    assert "env-only-pw" not in masked and "smtp-pw-1" not in masked


def test_short_password_is_masked_where_it_stands_as_a_password() -> None:
    assert masking.mask_secrets("postgresql://u:a/b@h/db") == "postgresql://u:***@h/db"
    assert masking.mask_secrets("user=u password=ab host=h") == "user=u password=*** host=h"


def test_prefect_state_message_and_logs_hold_no_password(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch, migrated_db: Database, clean_registry: None
) -> None:
    """A flow that fails on its connection: the state message and the run's logs in Prefect's
    database show the error, not the password (malformed URL, and a well-formed one)."""
    from prefect import get_client
    from prefect.logging.handlers import APILogHandler

    server = conninfo.conninfo_to_dict(migrated_db.dsn)
    host, port = server.get("host") or "127.0.0.1", server.get("port") or "5432"
    for url, secret in (
        (f"postgresql://app:Sekr3t/x@{host}:{port}/db", "Sekr3t"),
        (f"postgresql://app:{quote('Pr3fect@/pw', safe='')}@{host}:{port}/pgtender_no_such_db", "Pr3fect"),
    ):
        monkeypatch.setenv("PGTENDER_DATABASE_URL", url)
        state = flow_run("capacity")
        assert state.is_failed() and verdict_of(state).kind is Kind.BAD_INPUT
        assert secret not in (state.message or "")
        flow_run_id = state.state_details.flow_run_id
        APILogHandler().flush()  # the run's logs are sent in batches: wait until they are stored
        with get_client(sync_client=True) as client:
            from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            run = client.read_flow_run(flow_run_id)
        assert logs, "the failed run logged its error"
        assert all(secret not in log.message for log in logs)
        assert run.state is not None and secret not in (run.state.message or "")
