from __future__ import annotations

from typing import Any

import pytest

from flows.core import db, ledger
from tests.conftest import Database


def test_operation_completes_with_counts(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        with ledger.operation(conn, "capacity", params={"day": "2026-11-20"}) as op:
            op.counts["rows"] = 42
        row = conn.execute(
            "SELECT job, status, counts, params, finished_at >= started_at, error FROM pgtender_operations"
            " WHERE operation_id = %s",
            (op.operation_id,),
        ).fetchone()
    assert row == ("capacity", "completed", {"rows": 42}, {"day": "2026-11-20"}, True, None)


def test_operation_failure_is_recorded_even_when_work_rolls_back(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as ledger_conn, db.connect(migrated_db.dsn) as work:
        with pytest.raises(ZeroDivisionError), ledger.operation(ledger_conn, "retention") as op:
            work.execute(
                "INSERT INTO ml_models (name, version, model_type) VALUES ('m', 'v1', 'classification')"
            )
            op.counts["inserted"] = 1
            work.rollback()
            _ = 1 / 0
        row = ledger_conn.execute(
            "SELECT status, counts, error FROM pgtender_operations WHERE operation_id = %s",
            (op.operation_id,),
        ).fetchone()
        assert ledger_conn.execute("SELECT count(*) FROM ml_models WHERE name = 'm'").fetchone() == (0,)
    assert row == ("failed", {"inserted": 1}, "ZeroDivisionError: division by zero")


def test_failure_message_is_masked(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        op = ledger.start_operation(conn, "health")
        ledger.fail_operation(conn, op.operation_id, "could not reach postgresql://app:pa55word@db:5432/x")
        error = conn.execute(
            "SELECT error FROM pgtender_operations WHERE operation_id = %s", (op.operation_id,)
        ).fetchone()
    assert error == ("could not reach postgresql://app:***@db:5432/x",)


def test_finishing_twice_is_refused(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        op = ledger.start_operation(conn, "views")
        ledger.complete_operation(conn, op.operation_id)
        with pytest.raises(ValueError, match="not open"):
            ledger.complete_operation(conn, op.operation_id)


def test_ledger_requires_autocommit(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn) as conn, pytest.raises(ValueError, match="autocommit"):
        ledger.start_operation(conn, "views")


def test_ledger_entry_binds_job_and_operation_to_every_log_line(migrated_db: Database) -> None:
    import structlog

    from flows.core.engine import Done
    from tests.engine_fixtures import custom_run

    seen: dict[str, Any] = {}

    def work(run: Any) -> Done:
        seen.update(structlog.contextvars.get_contextvars(), run=run)
        run.record(refreshed=2)
        return Done()

    custom_run(work)
    op = seen["run"]
    assert seen["job"] == "views" and seen["operation_id"] == str(op.operation_id)
    assert "operation_id" not in structlog.contextvars.get_contextvars()
    with migrated_db.connect() as conn:
        row = conn.execute(
            "SELECT status, counts FROM pgtender_operations WHERE operation_id = %s", (op.operation_id,)
        ).fetchone()
    assert row == ("completed", {"refreshed": 2})
