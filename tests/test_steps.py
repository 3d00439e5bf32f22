"""A job's steps: one retry rule (lost connections only), no task tags, the lock checked first."""

from __future__ import annotations

import psycopg.errors
import pytest

from flows.core.ddl import LockRetriesExhausted
from flows.core.engine import is_transient, step
from flows.core.errors import ConfigError, DatabaseUnavailable


def _noop(run: object) -> int:
    return 1


@pytest.mark.usefixtures("prefect_api")
def test_a_step_is_a_prefect_task_without_tags_that_retries_lost_connections_only() -> None:
    from flows.edge.orchestrator import _retry_condition, _task

    made = _task(step("views-refresh", task_run_name="refresh-x")(_noop), "call")
    assert made.name == "views-refresh" and made.retries == 2
    assert made.tags == set()  # a tag costs a concurrency-limit lookup per task run
    from prefect.cache_policies import NO_CACHE

    assert made.cache_policy is NO_CACHE  # its first argument is the run: nothing to hash
    assert callable(_retry_condition(step("views-x")(_noop)))


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        # connection-level failures: a fresh connection may succeed (the step is retried)
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
    assert is_transient(exc) is retry
