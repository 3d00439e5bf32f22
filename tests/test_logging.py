from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from flows.core.logs import configure_logging, get_logger
from flows.core.masking import mask_secrets
from tests.conftest import Database, run_pgtender

passwords = st.text(
    alphabet=st.characters(blacklist_characters="@/ \t\n\r:&;'", blacklist_categories=("Cs", "Cc", "Z")),
    min_size=1,
    max_size=30,
)


@given(password=passwords)
def test_uri_passwords_never_survive_masking(password: str) -> None:
    url = f"postgresql://app:{password}@db.internal:5432/analytics"
    masked = mask_secrets(url)
    assert masked == "postgresql://app:***@db.internal:5432/analytics"


@given(password=passwords)
def test_keyword_passwords_never_survive_masking(password: str) -> None:
    masked = mask_secrets(f"host=db user=app password={password} dbname=x")
    assert masked == "host=db user=app password=*** dbname=x"


def test_log_lines_are_masked_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    try:
        log = get_logger(job="capacity")
        with structlog.contextvars.bound_contextvars(run_id="r-1", table="learning_events"):
            log.info(
                "connecting", dsn="postgresql://app:hunter2@db:5432/x", nested={"url": "password=hunter2"}
            )
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        structlog.reset_defaults()
    assert "hunter2" not in line
    record = json.loads(line)
    assert record["dsn"] == "postgresql://app:***@db:5432/x"
    assert record["run_id"] == "r-1" and record["table"] == "learning_events" and record["job"] == "capacity"


def test_capture_logs_sees_structured_events() -> None:
    with structlog.testing.capture_logs() as logs:
        get_logger(job="views").warning("missing unique index", view="mv_x")
    assert logs == [{"job": "views", "view": "mv_x", "event": "missing unique index", "log_level": "warning"}]


def test_tracebacks_in_log_lines_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    try:
        try:
            raise RuntimeError("cannot reach postgresql://app:Tr4ceback-pw@db:5432/x")
        except RuntimeError:
            get_logger(job="views").error("refresh failed", exc_info=True)
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        structlog.reset_defaults()
    record = json.loads(line)
    assert "RuntimeError" in record["exception"]
    assert "Tr4ceback-pw" not in line


def test_off_a_terminal_every_log_line_is_json(
    migrated_db: Database, tmp_path: Path, bare_prefect_api: str
) -> None:
    """Every log line JSON when stderr is not a TTY (the job runs here: the API serves no pgtender
    deployment), the outcome once on stdout."""
    import os

    env = {
        **os.environ,
        "PGTENDER_DATABASE_URL": migrated_db.dsn,
        "PREFECT_API_URL": bare_prefect_api,
        "PGTENDER_STATE_DIR": str(tmp_path / "state"),
    }
    done = run_pgtender(["run", "capacity"], env)
    assert done.returncode == 0, done.stderr
    logs = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(logs) >= 3
    parsed = [json.loads(line) for line in logs]  # every log line is a JSON object
    assert any(p.get("event") == "capacity recorded" for p in parsed)  # pgtender's
    assert any("no deployment of this job" in str(p.get("event", "")) for p in parsed)  # the notice
    assert done.stdout.startswith("capacity: done:") and done.stdout.count("\n") == 1
