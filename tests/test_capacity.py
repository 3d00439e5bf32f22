from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.capacity import measure
from flows.core import db, metrics
from flows.core.engine import Kind
from tests.conftest import Database, flow_run, verdict_of


def _metric(conn, metric: str, resource: str) -> float:
    row = conn.execute(
        "SELECT value FROM capacity_planning_metrics WHERE metric_name = %s AND resource_name = %s"
        " ORDER BY measured_at DESC LIMIT 1",
        (metric, resource),
    ).fetchone()
    assert row is not None, (metric, resource)
    return float(row[0])


def test_snapshot_counts_every_table_and_partition_exactly(demo_db: Database) -> None:
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        measurements = measure.snapshot(conn)
        by_key = {(m.metric_name, m.resource_name): m for m in measurements}
        partitions = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'learning_events'::regclass"
            ).fetchall()
        ]
        assert "learning_events_default" in partitions
        total = 0
        for part in partitions:
            exact = conn.execute(f"SELECT count(*) FROM {part}").fetchone()[0]
            assert by_key[("row_count", part)].value == exact
            assert by_key[("row_count", part)].resource_type == "partition"
            total += exact
        assert by_key[("row_count", "learning_events")].value == total
        assert total == conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
        assert by_key[("row_count", "learning_events_default")].value > 0  # demo rows fall into DEFAULT
        for table in ("ml_models", "predictions", "data_quality_checks"):
            assert (
                by_key[("row_count", table)].value
                == conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            )
        parent_bytes = by_key[("total_bytes", "learning_events")].value
        assert parent_bytes == sum(by_key[("total_bytes", p)].value for p in partitions)
        assert by_key[("index_bytes", "learning_events")].value > 0
        views = [m for m in measurements if m.resource_type == "view"]
        assert len({m.resource_name for m in views}) >= 3


def test_estimates_above_threshold(demo_db: Database) -> None:
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
        measurements = measure.snapshot(conn, exact_count_max_rows=0)
    rows = {m.resource_name: m for m in measurements if m.metric_name == "row_count"}
    estimated = [m for m in rows.values() if not m.metadata["exact"]]
    assert estimated, "tables above the threshold use the planner estimate"


def test_record_is_idempotent_for_one_instant(demo_db: Database) -> None:
    at = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        ms = measure.snapshot(conn)
        assert metrics.record(conn, ms, measured_at=at) == len(ms)
        assert metrics.record(conn, ms, measured_at=at) == len(ms)
        n = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics WHERE measured_at = %s", (at,)
        ).fetchone()[0]
    assert n == len(ms)


def test_record_is_one_statement_where_a_repeat_replaces_and_a_non_finite_value_writes_nothing(
    migrated_db: Database,
) -> None:
    at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    first = metrics.Measurement("row_count", "table", "ml_models", 1.0, "rows", {"exact": True})
    again = metrics.Measurement("row_count", "table", "ml_models", 2.0, "rows", {"exact": False})
    other = metrics.Measurement("total_bytes", "table", "ml_models", 8192, "bytes")
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        assert metrics.record(conn, [first, other, again], measured_at=at) == 3
        rows = conn.execute(
            "SELECT metric_name, value, metadata FROM capacity_planning_metrics WHERE measured_at = %s"
            " ORDER BY 1",
            (at,),
        ).fetchall()
        assert rows == [("row_count", 2.0, {"exact": False}), ("total_bytes", 8192.0, {})]
        bad = metrics.Measurement("row_count", "table", "predictions", float("inf"), "rows")
        with pytest.raises(ValueError, match="predictions is not finite"):
            metrics.record(conn, [bad, other], measured_at=at.replace(hour=4))
        (n,) = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics WHERE measured_at = %s", (at.replace(hour=4),)
        ).fetchone()
        assert n == 0


@pytest.mark.usefixtures("prefect_api")
def test_capacity_flow_records_snapshot_and_ledger(demo_db: Database) -> None:
    state = flow_run("capacity")
    assert state.is_completed() and verdict_of(state).kind is Kind.DONE
    result = state.result()
    with db.connect(demo_db.dsn, autocommit=True) as conn:
        op = conn.execute(
            "SELECT status, counts->>'metrics_written', flow_run_id FROM pgtender_operations WHERE job = 'capacity'"
        ).fetchall()
        assert len(op) == 1
        status, written, flow_run_id = op[0]
        assert status == "completed" and int(written) == result["metrics_written"]
        assert flow_run_id is not None
        tagged = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics WHERE flow_run_id = %s", (flow_run_id,)
        ).fetchone()[0]
        assert tagged == result["metrics_written"]
        assert (
            _metric(conn, "row_count", "learning_events")
            == conn.execute("SELECT count(*) FROM learning_events").fetchone()[0]
        )


@pytest.mark.usefixtures("prefect_api")
def test_capacity_flow_failure_is_in_ledger(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        conn.execute(
            "ALTER TABLE capacity_planning_metrics ADD CONSTRAINT no_rows CHECK (value < 0) NOT VALID"
        )
    state = flow_run("capacity")
    assert state.is_failed()
    verdict = verdict_of(state)
    assert verdict.kind is Kind.INFRASTRUCTURE and verdict.exit_code == 3 and "no_rows" in verdict.line
    with migrated_db.connect() as conn:
        rows = conn.execute("SELECT status, error FROM pgtender_operations WHERE job = 'capacity'").fetchall()
        metrics = conn.execute("SELECT count(*) FROM capacity_planning_metrics").fetchone()[0]
    assert len(rows) == 1 and rows[0][0] == "failed" and "no_rows" in rows[0][1]
    assert metrics == 0


@pytest.mark.usefixtures("prefect_api")
def test_capacity_flow_skips_while_another_run_holds_the_lock(migrated_db: Database) -> None:
    from flows.core import locks

    with db.connect(migrated_db.dsn, autocommit=True) as holder, locks.job_lock(holder, "capacity") as got:
        assert got
        state = flow_run("capacity")
    verdict = verdict_of(state)
    assert state.is_completed() and verdict.kind is Kind.SKIPPED and "holds the advisory lock" in verdict.line
    with migrated_db.connect() as conn:
        rows = conn.execute("SELECT status FROM pgtender_operations WHERE job = 'capacity'").fetchall()
        metrics = conn.execute("SELECT count(*) FROM capacity_planning_metrics").fetchone()[0]
    assert rows == [("skipped",)] and metrics == 0
