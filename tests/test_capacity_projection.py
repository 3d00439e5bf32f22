from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from flows import capacity
from flows.core import db, markdown
from flows.core.engine import Kind
from flows.core.policy import settings
from tests.conftest import Database, flow_run, verdict_of

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
GB = 10**9


def _policy(**kw: Any) -> settings.CapacityPolicy:
    return settings.CapacityPolicy.model_validate(kw)


def _plant(conn: Any, metric: str, rtype: str, name: str, series: list[tuple[datetime, float]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO capacity_planning_metrics (metric_name, resource_type, resource_name, measured_at, value)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(metric, rtype, name, at, value) for at, value in series],
        )


def _linear(days: int, start: float, per_day: float, now: datetime = NOW) -> list[tuple[datetime, float]]:
    # day d of `days`, the last one at `now`
    return [(now - timedelta(days=days - 1 - d), start + per_day * d) for d in range(days)]


def test_theil_sen_is_exact_on_a_line_and_ignores_outliers() -> None:
    x = np.arange(20, dtype=float)
    slope, intercept = capacity.theil_sen(x, 3.0 * x + 7.0)
    assert (slope, intercept) == (3.0, 7.0)
    y = 3.0 * x + 7.0
    y[[4, 11, 17]] = [500.0, -200.0, 900.0]
    slope, intercept = capacity.theil_sen(x, y)
    assert slope == 3.0 and intercept == 7.0
    assert capacity.theil_sen([1.0, 1.0], [2.0, 4.0]) == (0.0, 3.0)


def test_projection_on_linear_growth(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        # 30 days from 11 GB growing 1 GB/day: 40 GB now, 50 GB (the threshold) in 10 days.
        _plant(conn, "total_bytes", "table", "learning_events", _linear(30, 11 * GB, GB))
        # 1M rows/day, no row threshold configured
        _plant(conn, "row_count", "table", "learning_events", _linear(30, 0, 1_000_000))
        _plant(conn, "total_bytes", "database", migrated_db.name, _linear(30, 100 * GB, 0.5 * GB))
        # two days of history only: not projected
        _plant(conn, "total_bytes", "table", "ml_models", _linear(2, 1000, 10))
        # a partition is measured, but projections are per table and database
        _plant(conn, "total_bytes", "partition", "learning_events_default", _linear(30, 0, 10))
        policy = _policy(table_max_bytes={"learning_events": 50 * GB}, projection_horizon_days=30)
        frame = capacity.history(conn, now=NOW, days=policy.history_days)
        projections = {
            (p.metric_name, p.resource_name): p for p in capacity.project(frame, now=NOW, policy=policy)
        }
    assert set(projections) == {
        ("total_bytes", "learning_events"),
        ("row_count", "learning_events"),
        ("total_bytes", migrated_db.name),
    }
    size = projections[("total_bytes", "learning_events")]
    assert size.slope_per_day == pytest.approx(GB, rel=1e-12)
    assert size.current == pytest.approx(40 * GB, rel=1e-12)
    assert size.projected == pytest.approx(70 * GB, rel=1e-12)
    assert size.threshold == 50 * GB and size.points == 30 and size.span_days == 29.0
    assert size.reaches_at is not None
    assert abs((size.reaches_at - (NOW + timedelta(days=10))).total_seconds()) < 1e-3
    assert size.within_horizon
    rows = projections[("row_count", "learning_events")]
    assert rows.slope_per_day == pytest.approx(1_000_000, rel=1e-12)
    assert rows.threshold is None and rows.reaches_at is None and not rows.within_horizon
    database = projections[("total_bytes", migrated_db.name)]
    # 114.5 GB now, 0.5 GB/day: reaches the 200 GiB default in (214.748 - 114.5) / 0.5 days, beyond 30 days
    assert database.threshold == 200 * 1024**3
    expected_days = (200 * 1024**3 - 114.5 * GB) / (0.5 * GB)
    assert database.reaches_at is not None
    assert abs((database.reaches_at - NOW).total_seconds() / 86400 - expected_days) < 1e-6
    assert not database.within_horizon


def test_projection_on_noisy_growth_is_robust() -> None:
    import pandas as pd

    rng = np.random.default_rng(7)
    series = _linear(60, 20 * GB, 0.25 * GB)
    values = [v * (1 + rng.normal(0, 0.01)) for _, v in series]
    values[20] *= 4.0  # a bulk load later deleted
    values[41] *= 0.2  # a VACUUM FULL / TRUNCATE dip
    values[55] *= 3.0
    # several snapshots on one day: the last of the day counts
    extra = [(series[50][0] - timedelta(hours=5), 1.0)]
    frame = pd.DataFrame(
        [("total_bytes", "table", "t", at, v) for (at, _), v in zip(series, values, strict=True)]
        + [("total_bytes", "table", "t", at, v) for at, v in extra],
        columns=["metric_name", "resource_type", "resource_name", "measured_at", "value"],
    )
    policy = _policy(table_default_max_bytes=50 * GB, projection_horizon_days=365)
    (p,) = capacity.project(frame, now=NOW, policy=policy)
    truth_now = 20 * GB + 0.25 * GB * 59  # 34.75 GB
    truth_reach = NOW + timedelta(days=(50 * GB - truth_now) / (0.25 * GB))  # 61 days
    assert p.points == 60
    assert p.slope_per_day == pytest.approx(0.25 * GB, rel=0.03)
    assert p.current == pytest.approx(truth_now, rel=0.02)
    assert p.reaches_at is not None and abs((p.reaches_at - truth_reach).total_seconds()) < 3 * 86400
    # least squares over the same points is pulled far off by the outliers (why a robust fit)
    x = np.array([(at - NOW).total_seconds() / 86400 for at, _ in series])
    ols_slope = np.polyfit(x, np.array(values), 1)[0]
    assert abs(ols_slope / (0.25 * GB) - 1) > 0.1


def test_record_projections_carries_horizon_and_threshold(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _plant(conn, "total_bytes", "table", "learning_events", _linear(10, 45 * GB, GB))
        policy = _policy(table_max_bytes={"learning_events": 60 * GB}, projection_horizon_days=90)
        for _ in range(2):  # idempotent for one instant
            written, projections = capacity.project_and_record(conn, policy=policy, now=NOW)
        assert written == 2 and len(projections) == 1
        rows = conn.execute(
            "SELECT metric_name, value, unit, projection_horizon, threshold, projected_at, metadata"
            "  FROM capacity_planning_metrics WHERE measured_at = %s ORDER BY metric_name",
            (NOW,),
        ).fetchall()
    assert len(rows) == 3  # the planted snapshot of NOW, and the two projection rows
    growth = next(r for r in rows if r[0] == "total_bytes_growth_per_day")
    projected = next(r for r in rows if r[0] == "total_bytes_projected")
    assert growth[1] == pytest.approx(GB) and growth[2] == "bytes/day" and growth[6]["method"] == "theil-sen"
    assert projected[1] == pytest.approx(54 * GB + 90 * GB) and projected[3] == timedelta(days=90)
    assert projected[4] == 60 * GB
    assert abs((projected[5] - (NOW + timedelta(days=6))).total_seconds()) < 1e-3
    assert projected[6]["reaches_threshold_within_horizon"] is True


def test_seed_comparison() -> None:
    mk = capacity.Projection
    projections = [
        mk("row_count", "table", "learning_events", 30, 29.0, 500_000.0, 0, 365, 0, None, None, NOW),
        mk(
            "total_bytes", "table", "learning_events", 30, 29.0, 12 * GB / 365 * 2, 0, 365, 0, None, None, NOW
        ),
        mk("total_bytes", "database", "db", 30, 29.0, 134 * GB / 365, 0, 365, 0, None, None, NOW),
    ]
    rows = {r["component"]: r for r in capacity.seed_comparison(projections)}
    assert rows["Learning Events"]["observed_rows_per_day"] == 500_000.0
    assert rows["Learning Events"]["observed_gb_per_year"] == 24.0
    assert rows["Learning Events"]["observed_vs_seed"] == 2.0
    assert rows["Performance Metrics"]["observed_gb_per_year"] is None
    assert rows["Total (database)"]["observed_vs_seed"] == 1.0
    text = capacity.comparison_markdown(list(rows.values()), projections)
    cells = ("Learning Events", "1,000,000", "500,000.0", "12.0", "24.0", "2.0")
    assert "| " + " | ".join(markdown.text(c) for c in cells) + " |" in text


@pytest.mark.usefixtures("prefect_api")
def test_flow_projects_from_history(migrated_db: Database) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with migrated_db.connect() as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        _plant(
            conn, "total_bytes", "table", "learning_events", _linear(14, GB, GB, now=now - timedelta(hours=1))
        )
    state = flow_run("capacity")
    assert verdict_of(state).kind is Kind.DONE
    result = state.result()
    assert result["projections"] >= 1
    with migrated_db.connect() as conn:
        status, counts, flow_run_id = conn.execute(
            "SELECT status, counts, flow_run_id FROM pgtender_operations WHERE job = 'capacity'"
        ).fetchone()
        tagged = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics WHERE flow_run_id = %s", (flow_run_id,)
        ).fetchone()[0]
        slope = conn.execute(
            "SELECT value FROM capacity_planning_metrics WHERE metric_name = 'total_bytes_growth_per_day'"
            " AND resource_name = 'learning_events'"
        ).fetchone()[0]
    assert status == "completed" and counts["metrics_written"] == result["metrics_written"] == tagged
    # 14 planted days at 1 GB/day and today's real (tiny) size: the robust fit keeps the trend
    assert slope == pytest.approx(GB, rel=0.01)
    le = next(r for r in result["comparison"] if r["component"] == "Learning Events")
    assert le["observed_gb_per_year"] == pytest.approx(365.0, rel=0.01)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["capacity-projection"])), limit=50
        )
    mine = [a for a in artifacts if str(a.flow_run_id) == str(flow_run_id)]
    assert len(mine) == 1 and "Learning Events" in str(mine[0].data)
