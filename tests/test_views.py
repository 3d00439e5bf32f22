from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog

from flows import views
from flows.core import db, locks, migrations
from flows.core.archives.store import LocalStore
from flows.core.drop_permit import DataLossRefused, DropData
from flows.core.engine import Kind
from flows.core.errors import ConfigError
from flows.core.policy import settings
from tests.conftest import Database, flow_run, run_job, verdict_of

SEED_VIEWS = {"mv_model_performance_trend", "mv_pattern_trend", "mv_llm_usage_daily"}
# 0010's rollup table behind the view mv_daily_learning_events.
ROLLUP = "learning_events_daily"
MANAGED = SEED_VIEWS | {ROLLUP}

# A view on a view: mv_aa_top reads mv_zz_base through the ordinary view v_mid. Alphabetical order
# would refresh the top first; dependency order must not.
STACK = """
CREATE TABLE base_t (k int PRIMARY KEY, v int NOT NULL);
INSERT INTO base_t VALUES (1, 10), (2, 20);
CREATE MATERIALIZED VIEW mv_zz_base AS SELECT k, v FROM base_t;
CREATE UNIQUE INDEX mv_zz_base_key ON mv_zz_base (k);
CREATE VIEW v_mid AS SELECT k, v * 2 AS v2 FROM mv_zz_base;
CREATE MATERIALIZED VIEW mv_aa_top AS SELECT count(*)::bigint AS n, sum(v2)::bigint AS total FROM v_mid;
CREATE UNIQUE INDEX mv_aa_top_key ON mv_aa_top (n);
CREATE MATERIALIZED VIEW mv_mm_noindex AS SELECT k FROM base_t;
"""

BAD = """
CREATE TABLE bad_src (x int NOT NULL);
INSERT INTO bad_src VALUES (1);
CREATE MATERIALIZED VIEW mv_bad AS SELECT 1 / (SELECT count(*)::int FROM bad_src) AS q;
DELETE FROM bad_src;
"""

MINE = ("mv_zz_base", "mv_aa_top", "mv_mm_noindex")


def _policy(**kw: object) -> settings.ViewsPolicy:
    return settings.ViewsPolicy.model_validate(kw)


def test_discovery_finds_dependencies_through_ordinary_views(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        conn.execute(STACK)
        found = {v.name: v for v in views.discover(conn)}
    assert set(found) >= MANAGED
    assert all(found[name].concurrent for name in SEED_VIEWS)
    assert found[ROLLUP].rollup_function == "refresh_learning_events_daily" and found[ROLLUP].mode == "rollup"
    assert "mv_daily_learning_events" not in found  # a plain view over the rollup since 0010
    assert found["mv_aa_top"].depends_on == ("mv_zz_base",)
    assert found["mv_zz_base"].unique_index == "mv_zz_base_key"
    assert found["mv_mm_noindex"].unique_index is None and not found["mv_mm_noindex"].concurrent


def test_view_on_view_refreshes_after_its_source(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(STACK)
        conn.execute("INSERT INTO base_t VALUES (3, 30)")
        results = views.refresh_all(conn, _policy(include=MINE))
        top = conn.execute("SELECT n, total FROM mv_aa_top").fetchone()
    assert [r.view for r in results] == ["mv_mm_noindex", "mv_zz_base", "mv_aa_top"]
    assert all(r.status == "refreshed" for r in results)
    # The top saw the base's new row in the same run: 3 rows, 2 * (10 + 20 + 30).
    assert top == (3, 120)
    modes = {r.view: r.mode for r in results}
    assert modes == {"mv_mm_noindex": "plain", "mv_zz_base": "concurrently", "mv_aa_top": "concurrently"}
    rows = {r.view: r.rows for r in results}
    assert rows == {"mv_mm_noindex": 3, "mv_zz_base": 3, "mv_aa_top": 1}


def test_order_is_topological_with_chains() -> None:
    def mk(
        name: str, populated: bool, unique_index: str | None, depends_on: tuple[str, ...]
    ) -> views.MatView:
        return views.MatView(name=name, populated=populated, unique_index=unique_index, depends_on=depends_on)

    ordered = views.refresh_order(
        [
            mk("a", True, "k", ("b",)),
            mk("b", True, "k", ("c",)),
            mk("c", True, "k", ()),
            mk("d", True, None, ("x",)),
        ]
    )
    assert [v.name for v in ordered] == ["c", "d", "b", "a"]
    with pytest.raises(ConfigError):
        views.refresh_order([mk("a", True, "k", ("b",)), mk("b", True, "k", ("a",))])


def test_view_without_unique_index_is_refreshed_with_a_warning(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(STACK)
        with structlog.testing.capture_logs() as logs:
            results = views.refresh_all(conn, _policy(include=("mv_mm_noindex",)))
        metrics = dict(
            conn.execute(
                "SELECT metric_name, metadata->>'mode' FROM capacity_planning_metrics"
                " WHERE resource_name = 'mv_mm_noindex'"
            ).fetchall()
        )
    assert len(results) == 1 and results[0].status == "refreshed" and results[0].mode == "plain"
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["view"] == "mv_mm_noindex"
    assert "no unique index" in warnings[0]["reason"] and "mv_mm_noindex_key" in warnings[0]["reason"]
    assert metrics == {"view_refresh_ms": "plain", "view_rows": "plain"}


def test_failing_view_does_not_stop_the_others(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(STACK)
        conn.execute(BAD)
        results = views.refresh_all(conn, _policy(include=(*MINE, "mv_bad")))
        failed_metric = conn.execute(
            "SELECT value, metadata->>'error' FROM capacity_planning_metrics"
            " WHERE metric_name = 'view_refresh_failed' AND resource_name = 'mv_bad'"
        ).fetchone()
        refreshed_metrics = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics WHERE metric_name = 'view_refresh_ms'"
        ).fetchone()[0]
    status = {r.view: r.status for r in results}
    assert status == {
        "mv_bad": "failed",
        "mv_zz_base": "refreshed",
        "mv_aa_top": "refreshed",
        "mv_mm_noindex": "refreshed",
    }
    bad = next(r for r in results if r.view == "mv_bad")
    assert bad.error is not None and "DivisionByZero" in bad.error
    assert failed_metric is not None and failed_metric[0] == 1.0 and "division by zero" in failed_metric[1]
    assert refreshed_metrics == 3


def test_staleness_is_time_since_last_success(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(STACK)
        policy = _policy(include=("mv_zz_base",))
        first = views.refresh_all(conn, policy)[0]
        assert first.staleness_seconds is None  # never refreshed by pgtender before
        second = views.refresh_all(conn, policy)[0]
        stale = conn.execute(
            "SELECT value FROM capacity_planning_metrics WHERE metric_name = 'view_staleness_seconds'"
        ).fetchall()
    assert second.staleness_seconds is not None
    assert 0 < second.staleness_seconds <= (second.finished_at - first.finished_at).total_seconds()
    assert stale == [(second.staleness_seconds,)]


def test_allow_and_deny_lists(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(STACK)
        names = [v.name for v in views.plan(conn, _policy(exclude=("mv_mm_noindex", *MANAGED)))]
        assert names == ["mv_zz_base", "mv_aa_top"]
        with pytest.raises(ConfigError, match="not_a_view"):
            views.plan(conn, _policy(include=("not_a_view",)))


@pytest.mark.usefixtures("prefect_api")
def test_flow_refreshes_seed_views_concurrently(migrated_db: Database) -> None:
    state = flow_run("views")
    assert state.is_completed() and state.name == "Completed" and verdict_of(state).kind is Kind.DONE
    result = state.result()
    assert result["failed"] == [] and result["warnings"] == []
    assert result["views"][0]["view"] == ROLLUP  # rollups first: views may read them
    assert {r["view"]: r["mode"] for r in result["views"]} == {
        **dict.fromkeys(SEED_VIEWS, "concurrently"),
        ROLLUP: "rollup",
    }
    with migrated_db.connect() as conn:
        status, counts, operation_id = conn.execute(
            "SELECT status, counts, operation_id FROM pgtender_operations WHERE job = 'views'"
        ).fetchone()
        tagged = conn.execute(
            "SELECT count(DISTINCT resource_name) FROM capacity_planning_metrics"
            " WHERE metric_name = 'view_refresh_ms' AND operation_id = %s",
            (operation_id,),
        ).fetchone()[0]
    assert status == "completed" and counts["refreshed"] == 4 and counts["failed"] == 0
    assert counts["rollups"] == 1 and tagged == 4


@pytest.mark.usefixtures("prefect_api")
def test_flow_overlapping_a_running_refresh_is_skipped(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as holder, locks.job_lock(holder, "views") as got:
        assert got  # this session plays the running refresh
        state = flow_run("views")
    verdict = verdict_of(state)
    assert state.is_completed() and verdict.kind is Kind.SKIPPED and "holds the advisory lock" in verdict.line
    with migrated_db.connect() as conn:
        rows = conn.execute("SELECT status, error FROM pgtender_operations WHERE job = 'views'").fetchall()
        metrics = conn.execute("SELECT count(*) FROM capacity_planning_metrics").fetchone()[0]
    assert rows == [("skipped", verdict.line)]
    assert metrics == 0


@pytest.mark.usefixtures("prefect_api")
def test_flow_with_a_failing_view_ends_failed(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "policy.toml"
    config.write_text('[views]\nexclude = ["mv_llm_usage_daily"]\n')
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    with migrated_db.connect() as conn:
        conn.execute(BAD)
    report = run_job("views")
    assert report.verdict.kind is Kind.PROBLEMS and report.verdict.exit_code == 1
    assert "mv_bad" in report.verdict.line
    with migrated_db.connect() as conn:
        status, counts, error = conn.execute(
            "SELECT status, counts, error FROM pgtender_operations WHERE job = 'views'"
        ).fetchone()
        refreshed = {
            r[0]
            for r in conn.execute(
                "SELECT resource_name FROM capacity_planning_metrics WHERE metric_name = 'view_refresh_ms'"
            ).fetchall()
        }
    assert status == "problems" and counts["failed"] == 1 and counts["refreshed"] == 3 and "mv_bad" in error
    assert refreshed == MANAGED - {"mv_llm_usage_daily"}


@pytest.mark.usefixtures("prefect_api")
def test_dry_run_changes_nothing(migrated_db: Database) -> None:
    state = flow_run("views", dry_run=True)
    assert verdict_of(state).kind is Kind.DONE
    result = state.result()
    assert {p["name"] for p in result["plan"]} == MANAGED
    with migrated_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM capacity_planning_metrics").fetchone()[0] == 0


def test_views_and_health_deployments_cancel_new_runs_while_one_runs() -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    from flows.edge.serving import deployments

    by_name = {d.name: d for d in deployments()}
    for job, cron in (("views", "*/15 * * * *"), ("health", "*/5 * * * *")):
        dep = by_name[job]
        assert dep.concurrency_limit == 1
        assert dep.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
        assert [s.schedule.cron for s in dep.schedules] == [cron]


@pytest.mark.usefixtures("prefect_api")
def test_flow_with_unknown_view_in_policy_changes_nothing(
    migrated_db: Database, tmp_path, monkeypatch
) -> None:
    config = tmp_path / "pgtender.toml"
    config.write_text('[views]\ninclude = ["not_a_view"]\n')
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    report = run_job("views")
    assert report.verdict.kind is Kind.BAD_INPUT and report.verdict.exit_code == 2
    assert "not_a_view" in report.verdict.line
    with migrated_db.connect() as conn:
        # refused once the database was reached: a rejected row, nothing else
        assert conn.execute("SELECT job, status FROM pgtender_operations").fetchall() == [
            ("views", "rejected")
        ]
        assert conn.execute("SELECT count(*) FROM capacity_planning_metrics").fetchone()[0] == 0


# ---------------------------------------------------------------- the daily rollup (0010)

# 0007's definition of mv_daily_learning_events: what the view over the rollup must equal.
FULL_AGGREGATE = """
SELECT (e.occurred_at AT TIME ZONE 'UTC')::date, e.event_type, count(*)::bigint,
       count(DISTINCT e.session_id)::bigint, count(DISTINCT e.user_id)::bigint,
       count(*) FILTER (WHERE e.session_id IS NULL)::bigint,
       avg(EXTRACT(EPOCH FROM (e.ingested_at - e.occurred_at)))::double precision,
       max(EXTRACT(EPOCH FROM (e.ingested_at - e.occurred_at)))::double precision,
       min(e.occurred_at), max(e.occurred_at)
  FROM learning_events e GROUP BY 1, 2 ORDER BY 1, 2
"""
DAILY = "SELECT * FROM mv_daily_learning_events ORDER BY day, event_type"
PLANT = """
INSERT INTO learning_events (occurred_at, ingested_at, event_type, session_id, user_id)
SELECT %(day)s::timestamp AT TIME ZONE 'UTC' + g * interval '7 minutes',
       %(day)s::timestamp AT TIME ZONE 'UTC' + g * interval '7 minutes' + g * interval '1 second',
       (ARRAY['click', 'view', 'submit'])[1 + g %% 3],
       CASE WHEN g %% 4 = 0 THEN NULL ELSE md5((g %% 5)::text)::uuid END,
       'u' || (g %% 6)
  FROM generate_series(0, %(n)s - 1) g
"""


def _utc_today(conn: psycopg.Connection[Any]) -> date:
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_rollup_recomputes_trailing_days_and_backfill_ranges(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        today = _utc_today(conn)
        days = [today - timedelta(days=k) for k in (5, 1, 0)]
        for day in days:  # today's rows end before now: 7-minute steps from midnight
            conn.execute(PLANT, {"day": day, "n": 3 if day == today else 200})
        policy = _policy(include=(ROLLUP,))

        # A scheduled run: today and yesterday (rollup_days = 2); day -5 is not recomputed.
        (result,) = views.refresh_all(conn, policy)
        assert result.mode == "rollup" and result.status == "refreshed" and result.warning is None
        assert result.days == f"{today - timedelta(days=1)}..{today}" and result.rows == 6
        full = conn.execute(FULL_AGGREGATE).fetchall()
        assert conn.execute(DAILY).fetchall() == [r for r in full if r[0] >= days[1]]

        # Backfill's range reaches day -5: the view now equals 0007's full aggregate, exactly.
        (backfilled,) = views.refresh_all(conn, policy, days=(days[0], today))
        assert backfilled.days == f"{days[0]}..{today}" and backfilled.rows == 9
        assert conn.execute(DAILY).fetchall() == full

        # Late events older than the trailing days wait for a backfill; today's changes do not:
        # an event type that vanished from today loses its row.
        conn.execute(PLANT, {"day": days[0], "n": 1})
        conn.execute(
            "DELETE FROM learning_events WHERE event_type = 'submit' AND occurred_at >= %s", (today,)
        )
        views.refresh_all(conn, policy)
        daily = conn.execute(DAILY).fetchall()
        full = conn.execute(FULL_AGGREGATE).fetchall()
        assert [r for r in daily if r[0] >= days[1]] == [r for r in full if r[0] >= days[1]]
        assert (today, "submit") not in {(r[0], r[1]) for r in daily}
        stale = next(r for r in daily if r[:2] == (days[0], "click"))
        assert stale[2] == next(r for r in full if r[:2] == (days[0], "click"))[2] - 1

        # Retention drops day -5's raw events: recomputing that range keeps its aggregates (they
        # could not be rebuilt), while the days that still have events are recomputed.
        kept = [r for r in daily if r[0] == days[0]]
        conn.execute("DELETE FROM learning_events WHERE occurred_at < %s", (days[1],))
        (again,) = views.refresh_all(conn, policy, days=(days[0], today))
        assert again.status == "refreshed" and again.rows == 8  # 3 kept + yesterday 3 + today 2
        assert [r for r in conn.execute(DAILY).fetchall() if r[0] == days[0]] == kept

        meta = conn.execute(
            "SELECT metadata FROM capacity_planning_metrics"
            " WHERE metric_name = 'view_refresh_ms' AND resource_name = %s ORDER BY measured_at",
            (ROLLUP,),
        ).fetchall()
    assert [m[0]["mode"] for m in meta] == ["rollup"] * 4
    assert [m[0]["days"] for m in meta][1] == f"{days[0]}..{today}"


def test_rollup_refuses_a_reversed_range(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        today = _utc_today(conn)
        conn.execute(PLANT, {"day": today - timedelta(days=1), "n": 10})
        views.refresh_all(conn, _policy(include=(ROLLUP,)))
        before = conn.execute(DAILY).fetchall()
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid day range"):
            conn.execute("SELECT refresh_learning_events_daily(%s, %s)", (today, today - timedelta(days=1)))
        (failed,) = views.refresh_all(
            conn, _policy(include=(ROLLUP,)), days=(today, today - timedelta(days=3))
        )
        assert failed.status == "failed" and failed.error is not None and "invalid day range" in failed.error
        assert conn.execute(DAILY).fetchall() == before


def test_migration_0010_keeps_the_daily_aggregate(empty_db: Database, tmp_path: Path) -> None:
    with db.connect(empty_db.dsn, autocommit=True) as conn:
        migrations.migrate(conn, 9)
        today = _utc_today(conn)
        for k in (3, 2):
            conn.execute(PLANT, {"day": today - timedelta(days=k), "n": 50})
        conn.execute("REFRESH MATERIALIZED VIEW mv_daily_learning_events")
        before = conn.execute(DAILY).fetchall()
        migrations.migrate(conn)  # 0010 fills the rollup from the whole history
        assert conn.execute(DAILY).fetchall() == before == conn.execute(FULL_AGGREGATE).fetchall()
        with pytest.raises(DataLossRefused, match="learning_events_daily"):  # the rollup holds rows
            migrations.migrate(conn, 9)
        # with consent (a dump first), its down step rebuilds the materialized view with data
        migrations.migrate(conn, 9, drop_data=DropData(LocalStore(tmp_path / "archive")))
        kind = conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'mv_daily_learning_events'"
        ).fetchone()
        assert kind == ("m",) and conn.execute(DAILY).fetchall() == before
