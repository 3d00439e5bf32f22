"""pgtender pointed at a hot standby, and the replication probe against a real replica.

The primary is PGTENDER_CRON_TEST_DATABASE_URL, the standby PGTENDER_REPLICA_TEST_DATABASE_URL
(``.ci/setup-pg-replica.sh`` streams port 5433 to port 5434). Each test makes a database on the
primary and waits until the standby has replayed it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from flows import health
from flows.core import clock, db, migrations
from flows.core.engine import Kind
from flows.core.policy import settings
from flows.registry import REGISTRY
from tests.conftest import Database, flow_run, fresh_database, verdict_of
from tests.engine_fixtures import minimal_values

PRIMARY = os.environ.get("PGTENDER_CRON_TEST_DATABASE_URL")
REPLICA = os.environ.get("PGTENDER_REPLICA_TEST_DATABASE_URL")
pytestmark = pytest.mark.real_clock  # the pg_cron cluster's clock is not the one the matrix moves


def _replayed(primary: psycopg.Connection[Any], replica_dsn: str, timeout: float = 30.0) -> None:
    row = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(replica_dsn, autocommit=True) as standby:
                done = standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)).fetchone()
            if done and done[0]:
                return
        except psycopg.OperationalError:  # the database is not replayed yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"the standby did not replay {row[0]} within {timeout} s")


@pytest.fixture
def standby(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, str]]:
    """A migrated database on the primary with rows in learning_events' DEFAULT partition, and the
    DSN of the same database on the standby."""
    if not (PRIMARY and REPLICA):
        pytest.skip("PGTENDER_CRON_TEST_DATABASE_URL / PGTENDER_REPLICA_TEST_DATABASE_URL are not set")
    for database in fresh_database(PRIMARY, monkeypatch, None):
        with db.connect(database.dsn, autocommit=True) as conn:
            migrations.migrate(conn)
            far = datetime.now(UTC) + timedelta(days=400)  # beyond the premade partitions: DEFAULT
            conn.execute(
                "INSERT INTO learning_events (occurred_at, event_type) VALUES (%s, 'late'), (%s, 'late')",
                (far, far + timedelta(days=1)),
            )
            _replayed(conn, conninfo.make_conninfo(REPLICA, dbname=database.name))
        yield database, conninfo.make_conninfo(REPLICA, dbname=database.name)


def _state(dsn: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = 'learning_events'::regclass),"
            " (SELECT count(*) FROM learning_events_default),"
            " (SELECT count(*) FROM pgtender_operations),"
            " (SELECT count(*) FROM capacity_planning_metrics)"
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.usefixtures("prefect_api")
def test_maintenance_does_nothing_on_a_standby(
    standby: tuple[Database, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, replica_dsn = standby
    before = _state(primary.dsn)
    assert before[1] == 2
    monkeypatch.setenv("PGTENDER_DATABASE_URL", replica_dsn)
    # Every job that writes says so and does nothing (pg_partman's idiom), rather than failing
    # on its first write with "cannot execute INSERT in a read-only transaction".
    for job in REGISTRY.names():  # every job, backfill and the report included
        values = minimal_values(job, datetime.now(UTC).date() - timedelta(days=1))
        state = flow_run(job, **values)
        verdict = verdict_of(state)
        assert state.is_completed() and verdict.kind is Kind.SKIPPED, (job, state.message)
        assert "replica" in verdict.line, job
    with db.connect(replica_dsn, autocommit=True) as conn:
        assert db.is_replica(conn)
    with db.connect(primary.dsn, autocommit=True) as conn:
        _replayed(conn, replica_dsn)
    assert _state(primary.dsn) == before == _state(replica_dsn)


def test_replication_probe_on_primary_and_standby(standby: tuple[Database, str]) -> None:
    primary, replica_dsn = standby
    policy = settings.HealthPolicy()
    with db.connect(primary.dsn, autocommit=True) as conn:
        (on_primary,) = health.run_probes(conn, policy, now=clock.db_now(conn), only=("replication",)).results
    assert on_primary.status == "passed" and on_primary.observed is not None
    assert on_primary.observed["replicas"] >= 1 and on_primary.observed["lagging"] is None
    assert 0 <= on_primary.observed["max_replay_lag_seconds"] <= policy.replication_lag_max_seconds
    with db.connect(replica_dsn, autocommit=True) as conn:
        (on_standby,) = health.run_probes(conn, policy, now=clock.db_now(conn), only=("replication",)).results
    assert on_standby.status == "skipped"
    assert (
        on_standby.details["reason"] == "this server is a replica; replication lag is probed on the primary"
    )
