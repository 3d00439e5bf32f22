from __future__ import annotations

import psycopg.errors
import pytest
from prefect.states import Failed

from flows.core import runtime
from flows.core.ddl import LockRetriesExhausted
from flows.core.errors import ConfigError, DatabaseUnavailable


def _noop() -> int:
    return 1


def test_db_task_retries_only_transient_errors_and_carries_no_tags() -> None:
    task = runtime.db_task("views-refresh", "views", task_run_name="refresh-x")(_noop)
    assert task.name == "views-refresh" and task.retries == 2
    assert task.tags == set()  # a tag costs a concurrency-limit lookup per task run
    assert task.retry_condition_fn is runtime.retry_transient_only
    with pytest.raises(ValueError, match="must start with its job"):
        runtime.db_task("refresh", "views")


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        # connection-level failures: a fresh connection may succeed (Prefect task retries)
        (psycopg.OperationalError("server closed the connection"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (DatabaseUnavailable("cannot connect"), True),
        # lock conflicts are retried inside the DDL transaction (ddl.run_locked), not here
        (psycopg.errors.LockNotAvailable("lock timeout"), False),
        (psycopg.errors.SerializationFailure("conflict"), False),
        (LockRetriesExhausted("gave up"), False),
        # statement_timeout: a query that is too slow stays too slow
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (psycopg.errors.CheckViolation("bad row"), False),
        (ConfigError("bad input"), False),
        (ValueError("bug"), False),
    ],
)
def test_retry_condition(exc: BaseException, retry: bool) -> None:
    assert runtime.retry_transient_only(None, None, Failed(data=exc)) is retry  # type: ignore[arg-type]
