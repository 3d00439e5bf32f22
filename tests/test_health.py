from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from flows import health
from flows.core import clock, db, migrations, schedules
from flows.core.engine import Kind
from flows.core.policy import settings
from flows.health import checks
from tests.conftest import Database, flow_run, fresh_database, verdict_of

# .ci/setup-pg-cron.sh makes this server with pg_stat_statements in shared_preload_libraries.
PGSS_SERVER = os.environ.get("PGTENDER_CRON_TEST_DATABASE_URL")


def _now() -> datetime:
    # pgtender's clock, which a calendar session moves with the database's: inside the partitions
    # 0005 created (3 months back .. 2 ahead of the month the template was migrated in).
    return clock.now().replace(microsecond=0)


def _policy(**kw: Any) -> settings.HealthPolicy:
    return settings.HealthPolicy.model_validate(kw)


def _probe(
    conn: psycopg.Connection[Any],
    name: str,
    now: datetime,
    schedules: dict[str, str] | None = None,
    **policy: Any,
) -> list[checks.CheckResult]:
    run = health.run_probes(conn, _policy(**policy), now=now, only=(name,), schedules=schedules)
    return run.results


def _one(
    results: list[checks.CheckResult], target: str | None = None, check: str | None = None
) -> checks.CheckResult:
    found = [
        r
        for r in results
        if (target is None or r.target == target) and (check is None or r.check_name == check)
    ]
    assert len(found) == 1, results
    return found[0]


def _ts(at: datetime, hours: int, minutes: int = 0) -> str:
    """``at`` as text in another UTC offset (what a client in another time zone would send)."""
    return at.astimezone(timezone(timedelta(hours=hours, minutes=minutes))).isoformat()


# --- event lag ---------------------------------------------------------------------------------------


def _plant_event(conn: psycopg.Connection[Any], occurred: datetime, ingested: datetime) -> None:
    conn.execute(
        "INSERT INTO learning_events (occurred_at, ingested_at, event_type) VALUES (%s::timestamptz, %s::timestamptz, 'click')",
        (_ts(occurred, 5, 45), _ts(ingested, -8)),
    )


def test_event_lag_passes_and_breaches_across_time_zones(migrated_db: Database) -> None:
    now = _now()
    with migrated_db.connect() as writer:
        writer.execute("SET TimeZone = 'Asia/Kathmandu'")
        _plant_event(
            writer, now - timedelta(seconds=3600), now - timedelta(seconds=3500)
        )  # old, outside lookback
        _plant_event(writer, now - timedelta(seconds=200), now - timedelta(seconds=170))
        _plant_event(writer, now + timedelta(hours=2), now)  # clock-skewed future event: ignored
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'America/St_Johns'")  # -03:30, and the reader's zone differs again
        r = _one(_probe(conn, "event_lag", now))
        assert r.status == "passed"
        assert r.observed is not None
        assert r.observed["lag_seconds"] == 200.0
        assert r.observed["max_ingest_delay_seconds"] == 30.0
        assert r.observed["recent_events"] == 1
        assert r.threshold == 300.0
        # Ingestion stopped: 400 s after the newest event the lag breaches the 5-minute threshold.
        late = _one(_probe(conn, "event_lag", now + timedelta(seconds=200)))
        assert late.status == "failed" and late.observed is not None and late.observed["lag_seconds"] == 400.0
    # Late ingestion: a fresh event that arrived 10 minutes after it happened.
    with migrated_db.connect() as writer:
        _plant_event(writer, now - timedelta(seconds=10), now + timedelta(seconds=590))
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        r = _one(_probe(conn, "event_lag", now))
    assert r.status == "failed" and r.observed is not None
    assert r.observed["lag_seconds"] == 10.0 and r.observed["max_ingest_delay_seconds"] == 600.0


def test_event_lag_skips_without_events(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        r = _one(_probe(conn, "event_lag", _now()))
    assert r.status == "skipped" and r.details["reason"] == "no events yet"


# --- model accuracy ---------------------------------------------------------------------------------


def test_model_accuracy_drop_both_ways(migrated_db: Database) -> None:
    now = _now()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        for name, latest in (("steady", 0.81), ("sliding", 0.63)):
            model_id = conn.execute(
                "INSERT INTO ml_models (name, version, model_type) VALUES (%s, 'v1', 'classifier') RETURNING id",
                (name,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO model_evaluations (model_id, metric_name, metric_value, is_baseline, evaluated_at)"
                " VALUES (%s, 'accuracy', 0.88, true, %s), (%s, 'accuracy', 0.92, true, %s),"
                "        (%s, 'accuracy', 0.99, false, %s), (%s, 'accuracy', %s, false, %s),"
                "        (%s, 'accuracy', 0.10, false, %s)",  # in the future of `now`: not yet
                (
                    model_id,
                    now - timedelta(days=9),
                    model_id,
                    now - timedelta(days=8),
                    model_id,
                    now - timedelta(days=2),
                    model_id,
                    latest,
                    now - timedelta(days=1),
                    model_id,
                    now + timedelta(days=1),
                ),
            )
        results = _probe(conn, "model_accuracy", now)
    steady = _one(results, "steady@v1:accuracy")
    sliding = _one(results, "sliding@v1:accuracy")
    assert steady.status == "passed" and sliding.status == "failed"
    assert steady.observed is not None and sliding.observed is not None
    assert steady.observed["baseline"] == pytest.approx(0.90, abs=1e-12)
    assert steady.observed["drop_pct"] == pytest.approx(10.0, abs=1e-9)
    assert sliding.observed["drop_pct"] == pytest.approx(30.0, abs=1e-9)
    assert sliding.observed["latest"] == 0.63 and sliding.threshold == 20.0


# --- query response ---------------------------------------------------------------------------------


def _log_query(
    conn: psycopg.Connection[Any],
    fp: str,
    at: datetime,
    ms: float,
    baseline: float | None = None,
    calls: int = 1,
) -> None:
    conn.execute(
        "INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms, baseline_ms, calls)"
        " VALUES (%s, %s, %s, %s, %s)",
        (at, fp, ms, baseline, calls),
    )


def test_query_response_without_pg_stat_statements(migrated_db: Database) -> None:
    now = _now()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone()
        if available:
            # Installed but not in shared_preload_libraries: the view exists and raises on read.
            conn.execute("CREATE EXTENSION pg_stat_statements")
        empty = _one(_probe(conn, "query_response", now))
        assert empty.status == "skipped" and empty.observed == {"source": None}
        if available:
            assert "unusable" in empty.details["pg_stat_statements"]
        else:
            assert "not installed" in empty.details["pg_stat_statements"]

        # query_performance_logs with a logged baseline: 30 ms against 20 ms -> 1.5x, passes.
        _log_query(conn, "q_fast", now - timedelta(minutes=10), 30.0, 20.0, calls=3)
        ok = _one(_probe(conn, "query_response", now))
        assert ok.status == "passed" and ok.observed is not None
        assert (
            ok.observed["source"] == "query_performance_logs"
            and ok.details["source"] == "query_performance_logs"
        )
        assert ok.observed["max_ratio"] == 1.5 and ok.observed["queries_compared"] == 1

        # A fingerprint without logged baseline: baseline is its median over the days before (10 ms);
        # weighted mean of (40 ms x 1, 55 ms x 3) = 51.25 ms -> 5.125x, breaches 2x.
        for day, ms in ((2, 10.0), (3, 10.0), (4, 12.0)):
            _log_query(conn, "q_slow", now - timedelta(days=day), ms)
        _log_query(conn, "q_slow", now - timedelta(minutes=20), 40.0)
        _log_query(conn, "q_slow", now - timedelta(minutes=5), 55.0, calls=3)
        bad = _one(_probe(conn, "query_response", now))
    assert bad.status == "failed" and bad.observed is not None
    assert bad.observed["query"] == "q_slow" and bad.observed["max_ratio"] == 5.125
    assert bad.observed["queries_compared"] == 2 and bad.observed["over_threshold"] == 1
    assert bad.details["worst"][0]["baseline_source"] == "history"


PGSS_STATEMENT = "SELECT count(*) FROM learning_events WHERE source = $1"


@pytest.fixture
def pgss_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A migrated database on a server that preloads pg_stat_statements, with the extension."""
    if not PGSS_SERVER:
        pytest.skip("PGTENDER_CRON_TEST_DATABASE_URL is not set (a server preloading pg_stat_statements)")
    for database in fresh_database(PGSS_SERVER, monkeypatch, None):
        with db.connect(database.dsn, autocommit=True) as conn:
            migrations.migrate(conn)
            conn.execute("CREATE EXTENSION pg_stat_statements")
            # Forget this database's statements (the view is server-wide; other databases keep theirs).
            conn.execute(
                "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
                " WHERE datname = current_database()), 0)"
            )
        yield database


def _statement_stats(conn: psycopg.Connection[Any]) -> tuple[str, float]:
    row = conn.execute(
        "SELECT s.queryid::text, s.mean_exec_time FROM pg_stat_statements s"
        " JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database() AND s.query = %s",
        (PGSS_STATEMENT,),
    ).fetchone()
    assert row is not None, "the planted statement is not in pg_stat_statements"
    return str(row[0]), float(row[1])


@pytest.mark.real_clock  # on the pg_cron cluster
def test_query_response_with_pg_stat_statements(pgss_db: Database) -> None:
    now = _now()
    policy = _policy()
    with db.connect(pgss_db.dsn, autocommit=True) as conn:
        for _ in range(5):
            conn.execute("SELECT count(*) FROM learning_events WHERE source = %s", ("bench",))
        queryid, mean_ms = _statement_stats(conn)
        target = f"queryid:{queryid}"

        # First run: statements but no history to compare with. pg_stat_statements is reported as the
        # reason, the run falls back to query_performance_logs (empty here: skipped), and the current
        # means are recorded as the next runs' baseline.
        first = health.run_probes(conn, policy, now=now, only=("query_response",))
        skipped = _one(first.results)
        assert skipped.status == "skipped" and skipped.observed == {"source": None}
        assert skipped.details["pg_stat_statements"] == (
            "pg_stat_statements has no baseline yet (recorded by this run for the next ones)"
        )
        assert ("health.query_mean_ms", target, mean_ms, "ms") in skipped.resource_metrics
        health.record(conn, first)
        recorded = conn.execute(
            "SELECT value FROM capacity_planning_metrics"
            " WHERE metric_name = 'health.query_mean_ms' AND resource_name = %s",
            (target,),
        ).fetchall()
        assert [r[0] for r in recorded] == [mean_ms]
        # Keep only the planted statement's history: the probe's own statements vary run to run.
        conn.execute(
            "DELETE FROM capacity_planning_metrics"
            " WHERE metric_name = 'health.query_mean_ms' AND resource_name <> %s",
            (target,),
        )

        # Next run: the statement has not run since, so it is at exactly its baseline.
        later = now + timedelta(minutes=5)
        ok = _one(_probe(conn, "query_response", later))
        assert (
            ok.status == "passed" and ok.observed is not None and ok.details["source"] == "pg_stat_statements"
        )
        assert "pg_stat_statements" not in ok.details
        assert ok.observed["source"] == "pg_stat_statements" and ok.observed["query"] == queryid
        assert ok.observed["max_ratio"] == pytest.approx(1.0, rel=1e-9)
        assert ok.observed["queries_compared"] == 1 and ok.observed["over_threshold"] == 0

        # Two earlier runs saw it 4x faster: the median baseline is mean / 4, a 4x slowdown.
        for hours in (1, 2):
            conn.execute(
                "INSERT INTO capacity_planning_metrics (measured_at, metric_name, resource_type,"
                " resource_name, value, unit) VALUES (%s, 'health.query_mean_ms', 'health', %s, %s, 'ms')",
                (later - timedelta(hours=hours), target, mean_ms / 4),
            )
        bad = _one(_probe(conn, "query_response", later))
    assert bad.status == "failed" and bad.observed is not None
    assert bad.observed["query"] == queryid and bad.observed["source"] == "pg_stat_statements"
    assert bad.observed["max_ratio"] == pytest.approx(4.0, rel=1e-9)
    assert bad.observed["over_threshold"] == 1 and bad.threshold == 2.0


# --- quality score ----------------------------------------------------------------------------------


def _quality(conn: psycopg.Connection[Any], window_end: datetime, statuses: list[str]) -> None:
    for i, status in enumerate(statuses):
        conn.execute(
            "INSERT INTO data_quality_checks (check_name, suite, target, window_start, window_end, status)"
            " VALUES (%s, 'learning_events', 'learning_events', %s, %s, %s)",
            (f"expect_{i}", window_end - timedelta(days=1), window_end, status),
        )


def test_quality_score_both_ways(migrated_db: Database) -> None:
    now = _now()
    day = now.replace(hour=0, minute=0, second=0)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _quality(conn, day - timedelta(days=1), ["failed"] * 5)  # an older window: not the latest
        _quality(conn, day, ["passed"] * 8 + ["warning", "failed", "skipped"])
        ok = _one(_probe(conn, "quality_score", now))
        assert ok.status == "passed" and ok.observed is not None
        assert ok.observed["score_pct"] == 90.0 and ok.observed["counted"] == 10
        conn.execute(
            "UPDATE data_quality_checks SET status = 'error' WHERE check_name = 'expect_0' AND window_end = %s",
            (day,),
        )
        bad = _one(_probe(conn, "quality_score", now))
    assert bad.status == "failed" and bad.observed is not None
    assert bad.observed["score_pct"] == 80.0 and bad.observed["failing"] == 2


# --- resource utilization ---------------------------------------------------------------------------


def test_resource_utilization_both_ways(migrated_db: Database) -> None:
    now = _now()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        ins = "INSERT INTO resource_utilization (measured_at, resource_type, resource_name, host, utilization_pct) VALUES (%s, %s, %s, 'db1', %s)"
        conn.execute(
            ins, (now - timedelta(minutes=10), "cpu", "cpu0", 97.0)
        )  # superseded by the later sample
        conn.execute(ins, (now - timedelta(minutes=2), "cpu", "cpu0", 70.0))
        conn.execute(ins, (now - timedelta(minutes=1), "disk", "/data", 85.0))
        conn.execute(ins, (now - timedelta(hours=2), "memory", "ram", 99.0))  # outside the lookback
        results = _probe(conn, "resource_utilization", now)
        ok = _one(results, "resource_utilization")
        assert ok.status == "passed" and ok.observed is not None
        assert ok.observed == {
            "max_pct": 85.0,
            "resource": "disk:/data@db1",
            "resources": 2,
            "over_threshold": 0,
        }
        conns = _one(results, "connections")
        assert conns.observed is not None
        assert conns.observed["pct"] == 100.0 * conns.observed["used"] / conns.observed["max_connections"]
        assert conns.status == "passed"
        conn.execute(ins, (now - timedelta(seconds=30), "memory", "ram", 85.5))
        bad = _one(
            _probe(conn, "resource_utilization", now, resource_utilization_max_pct=85.0),
            "resource_utilization",
        )
        tight = _one(
            _probe(conn, "resource_utilization", now, resource_utilization_max_pct=0.001), "connections"
        )
    assert bad.status == "failed" and bad.observed is not None
    assert bad.observed["max_pct"] == 85.5 and bad.observed["resource"] == "memory:ram@db1"
    assert tight.status == "failed"


# --- sessions: long transactions, idle in transaction, lock waits ------------------------------------


def test_session_probes_both_ways(migrated_db: Database) -> None:
    now = _now()
    with db.connect(migrated_db.dsn, autocommit=True) as conn, migrated_db.connect(autocommit=False) as idle:
        idle.execute("SELECT 1")  # now idle in transaction
        time.sleep(0.05)
        quiet = {r.check_name: r for r in _probe(conn, "sessions", now)}
        assert {k: (v.status, v.observed["count"] if v.observed else None) for k, v in quiet.items()} == {
            "health.long_transactions": ("passed", 0),
            "health.idle_in_transaction": ("passed", 0),
            "health.lock_waits": ("passed", 0),
        }
        loud = {
            r.check_name: r
            for r in _probe(
                conn, "sessions", now, long_transaction_max_seconds=0, idle_in_transaction_max_seconds=0
            )
        }
        assert loud["health.long_transactions"].status == "failed"
        assert loud["health.idle_in_transaction"].status == "failed"
        idle_obs = loud["health.idle_in_transaction"].observed
        assert idle_obs is not None and idle_obs["count"] == 1 and idle_obs["max_seconds"] > 0
        assert loud["health.idle_in_transaction"].details["offenders"][0]["pid"] == idle.info.backend_pid
        assert loud["health.lock_waits"].status == "passed"
        idle.rollback()

        # A blocked lock wait: `holder` keeps ACCESS EXCLUSIVE, `waiter` queues behind it.
        with migrated_db.connect(autocommit=False) as holder:
            holder.execute("LOCK TABLE ml_models IN ACCESS EXCLUSIVE MODE")
            waiter_pid: list[int] = []

            def wait() -> None:
                with migrated_db.connect() as waiter:
                    waiter_pid.append(waiter.info.backend_pid)
                    waiter.execute("SELECT count(*) FROM ml_models")

            thread = threading.Thread(target=wait)
            thread.start()
            for _ in range(200):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.02)
            blocked = {r.check_name: r for r in _probe(conn, "sessions", now, lock_wait_max_seconds=0)}
            calm = {r.check_name: r for r in _probe(conn, "sessions", now)}
            holder.rollback()
            thread.join(10)
    waits = blocked["health.lock_waits"]
    assert waits.status == "failed" and waits.observed is not None and waits.observed["count"] == 1
    assert waits.details["offenders"][0]["pid"] == waiter_pid[0]
    assert calm["health.lock_waits"].status == "passed"


# --- xid age, replication, DEFAULT partitions -------------------------------------------------------


def test_xid_age_both_ways(migrated_db: Database) -> None:
    now = _now()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        before = conn.execute(
            "SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
        ok = _one(_probe(conn, "xid_age", now))
        warn = _one(_probe(conn, "xid_age", now, xid_age_warning=1))
        bad = _one(_probe(conn, "xid_age", now, xid_age_warning=1, xid_age_max=1))
        after = conn.execute(
            "SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
    assert (ok.status, warn.status, bad.status) == ("passed", "warning", "failed")
    assert ok.observed is not None and before <= ok.observed["database_age"] <= after
    assert ok.observed["age"] == max(ok.observed["database_age"], ok.observed["relation_age"])


def test_replication_skips_without_replicas(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        r = _one(_probe(conn, "replication", _now()))
    assert r.status == "skipped" and r.details["reason"] == "no replicas" and r.observed == {"replicas": 0}


def test_default_partition_rows_both_ways(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        before = _probe(conn, "default_partitions", _now())
        assert {(r.target, r.status) for r in before} == {
            ("learning_events", "passed"),
            ("system_performance_metrics", "passed"),
        }
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type) VALUES ('2100-01-01 00:00+00', 'x'), ('1999-06-01 00:00+00', 'y')"
        )
        after = _probe(conn, "default_partitions", _now())
        tolerant = _probe(conn, "default_partitions", _now(), default_partition_max_rows=2)
    le = _one(after, "learning_events")
    assert le.status == "warning" and le.observed == {
        "rows": 2,
        "capped": False,
        "default_partition": "learning_events_default",
        "since": le.observed["since"],  # the probe's first window with rows: this one
        "hours": 0.0,
    }
    assert _one(after, "system_performance_metrics").status == "passed"
    assert _one(tolerant, "learning_events").status == "passed"


# --- partition horizon ------------------------------------------------------------------------------


def test_partition_horizon_both_ways(migrated_db: Database) -> None:
    day0 = _now().replace(hour=0, minute=0, second=0)
    now = day0 + timedelta(hours=12)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE ph_t (at timestamptz NOT NULL) PARTITION BY RANGE (at)")
        for offset in (-1, 0, 1, 3):  # a gap at day 2: coverage ends at day0 + 2
            lo, hi = day0 + timedelta(days=offset), day0 + timedelta(days=offset + 1)
            conn.execute(
                psycopg.sql.SQL("CREATE TABLE {} PARTITION OF ph_t FOR VALUES FROM ({}) TO ({})").format(
                    psycopg.sql.Identifier(f"ph_t_p{lo:%Y%m%d}"),
                    psycopg.sql.Literal(lo),
                    psycopg.sql.Literal(hi),
                )
            )
        conn.execute("CREATE TABLE ph_t_default PARTITION OF ph_t DEFAULT")
        conn.execute("CREATE TABLE ph_int (n int) PARTITION BY RANGE (n)")
        conn.execute("SET TimeZone = 'Pacific/Chatham'")  # +12:45/+13:45: bounds are re-read in this zone
        ok = _probe(conn, "partition_horizon", now)
        bad = _probe(conn, "partition_horizon", now, partition_min_intervals_ahead=2)
        le = _one(_probe(conn, "partition_horizon", _now()), "learning_events")
    r = _one(ok, "ph_t")
    assert r.status == "passed" and r.observed is not None
    assert r.observed["intervals_ahead"] == 1.5 and r.observed["interval_seconds"] == 86400.0
    assert r.observed["last_partition"] == f"ph_t_p{day0 + timedelta(days=1):%Y%m%d}"
    assert r.observed["partitions"] == 4
    assert _one(bad, "ph_t").status == "failed"
    assert _one(ok, "ph_int").status == "skipped"
    assert le.status == "passed" and le.observed is not None and le.observed["intervals_ahead"] > 1


# --- job watchdog -----------------------------------------------------------------------------------


def _ledger(
    conn: psycopg.Connection[Any], job: str, status: str, finished: datetime, error: str | None = None
) -> None:
    conn.execute(
        "INSERT INTO pgtender_operations (job, status, started_at, finished_at, error)"
        " VALUES (%s, %s, %s, %s, %s)",
        (job, status, finished - timedelta(seconds=5), finished, error),
    )


def test_watchdog_flags_a_stale_job_and_quiets_after_success(migrated_db: Database) -> None:
    now = _now()
    schedules = {"views": "*/15 * * * *", "capacity": "0 2 * * *"}
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        fresh = _probe(conn, "job_watchdog", now, schedules)
        assert {r.target: r.status for r in fresh} == {"views": "skipped", "capacity": "skipped"}
        _ledger(conn, "views", "completed", now - timedelta(minutes=40))
        _ledger(conn, "views", "failed", now - timedelta(minutes=10), "InfrastructureError: connection lost")
        _ledger(conn, "capacity", "completed", now - timedelta(hours=20))
        stale = {r.target: r for r in _probe(conn, "job_watchdog", now, schedules)}
        assert stale["views"].status == "failed" and stale["views"].observed is not None
        assert stale["views"].observed["age_seconds"] == 2400.0
        assert stale["views"].observed["period_seconds"] == 900.0 and stale["views"].threshold == 1350.0
        assert stale["capacity"].status == "passed" and stale["capacity"].observed is not None
        assert stale["capacity"].observed["period_seconds"] == 86400.0
        _ledger(conn, "views", "completed", now - timedelta(minutes=5))
        quiet = {r.target: r for r in _probe(conn, "job_watchdog", now, schedules)}
        assert quiet["views"].status == "passed" and quiet["views"].observed is not None
        assert quiet["views"].observed["age_seconds"] == 300.0
        # A run that did its work and found problems still ran: its findings alert on their own.
        _ledger(conn, "views", "problems", now - timedelta(minutes=2), "1 view failed to refresh")
        found = {r.target: r for r in _probe(conn, "job_watchdog", now, schedules)}
        assert found["views"].status == "passed" and found["views"].observed is not None
        assert found["views"].observed["age_seconds"] == 120.0
        # A job that never succeeded while pgtender has run here for longer than its allowed period.
        never = {
            r.target: r
            for r in _probe(
                conn, "job_watchdog", now, {**schedules, "retention": "0 3 * * 0"}, watchdog_grace_factor=1
            )
        }
        late = {
            r.target: r
            for r in _probe(conn, "job_watchdog", now + timedelta(days=11), {"retention": "0 3 * * 0"})
        }
    assert never["retention"].status == "skipped"
    assert late["retention"].status == "failed" and "never succeeded" in late["retention"].details["reason"]
    assert (
        late["retention"].observed is not None and late["retention"].observed["period_seconds"] == 7 * 86400.0
    )


def test_expected_period_from_cron() -> None:
    at = datetime(2026, 11, 22, 10, 7, tzinfo=UTC)
    assert schedules.expected_period("*/5 * * * *", at) == timedelta(minutes=5)
    assert schedules.expected_period("0 2 * * *", at) == timedelta(days=1)
    assert schedules.expected_period("0 8 * * 1", at) == timedelta(days=7)
    # now exactly on a fire (the leap-day instant of the matrix found it): still one period
    on_fire = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert schedules.expected_period("*/15 * * * *", on_fire) == timedelta(minutes=15)
    assert schedules.expected_period("0 12 * * *", on_fire) == timedelta(days=1)
    # Read in a zone with DST: the longer of the two lengths around a change.
    fall = datetime(2027, 10, 31, 12, 0, tzinfo=UTC)  # Europe/Berlin fell back at 01:00 UTC
    assert schedules.expected_period("0 8 * * *", fall, "Europe/Berlin") == timedelta(hours=25)
    assert schedules.expected_period("0 8 * * 1", fall, "Europe/Berlin") == timedelta(days=7, hours=1)
    assert schedules.expected_period("0 8 * * *", fall) == timedelta(days=1)  # UTC has no DST


@pytest.mark.parametrize(
    ("cron", "last_success", "now", "allowed_hours"),
    [
        # daily at 08:00 Berlin: Saturday 08:00 CEST to Sunday 08:00 CET is 25 hours
        (
            "0 8 * * *",
            datetime(2027, 10, 30, 6, 0, 20, tzinfo=UTC),
            datetime(2027, 10, 31, 7, 0, 10, tzinfo=UTC),
            25,
        ),
        # weekly, Monday 08:00 Berlin: the report's own schedule, 169 hours across the change
        (
            "0 8 * * 1",
            datetime(2027, 10, 25, 6, 1, tzinfo=UTC),
            datetime(2027, 11, 1, 7, 0, 30, tzinfo=UTC),
            169,
        ),
    ],
)
def test_watchdog_reads_a_zoned_schedule_across_dst(
    migrated_db: Database, cron: str, last_success: datetime, now: datetime, allowed_hours: int
) -> None:
    """A job that ran at its last firing is on time at the next one, also when the clocks changed in
    between (grace factor 1: no slack to hide an hour); read in UTC the same age looks late."""
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _ledger(conn, "report", "completed", last_success)
        zoned = health.run_probes(
            conn,
            _policy(watchdog_grace_factor=1),
            now=now,
            only=("job_watchdog",),
            schedules={"report": cron},
            timezones={"report": "Europe/Berlin"},
        )
        in_utc = _probe(conn, "job_watchdog", now, {"report": cron}, watchdog_grace_factor=1)
    (r,) = zoned.results
    assert r.status == "passed", r.observed
    assert r.observed is not None and r.observed["allowed_seconds"] == allowed_hours * 3600.0
    assert r.observed["age_seconds"] > (allowed_hours - 1) * 3600.0  # longer than the plain period
    assert _one(in_utc).status == "failed"


# --- writing: one current row per (check, target, window) -------------------------------------------


def test_rerun_replaces_the_current_row_of_the_window(migrated_db: Database) -> None:
    now = datetime(2026, 11, 22, 10, 7, 30, tzinfo=UTC)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        first = health.run_probes(conn, _policy(), now=now, only=("xid_age", "default_partitions"))
        assert (first.window_start, first.window_end) == (
            datetime(2026, 11, 22, 10, 5, tzinfo=UTC),
            datetime(2026, 11, 22, 10, 10, tzinfo=UTC),
        )
        assert health.record(conn, first)[0] == 3
        second = health.run_probes(
            conn,
            _policy(xid_age_warning=1),
            now=now + timedelta(minutes=2),
            only=("xid_age", "default_partitions"),
        )
        health.record(conn, second)
        rows = conn.execute(
            "SELECT check_name, target, count(*), count(*) FILTER (WHERE is_current),"
            "       max(status) FILTER (WHERE is_current)"
            "  FROM data_quality_checks WHERE suite = 'health' GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        metrics = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics WHERE metric_name = 'health.xid_age'"
        ).fetchone()[0]
    assert rows == [
        ("health.default_partition_rows", "learning_events", 2, 1, "passed"),
        ("health.default_partition_rows", "system_performance_metrics", 2, 1, "passed"),
        ("health.xid_age", "database", 2, 1, "warning"),
    ]
    assert metrics == 2


def test_probe_error_is_recorded_and_does_not_stop_others(migrated_db: Database) -> None:
    role = psycopg.sql.Identifier(f"pgtender_t_{migrated_db.name[-12:]}")  # cluster-global: unique, dropped
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
        try:
            conn.execute(psycopg.sql.SQL("GRANT SELECT ON learning_events TO {}").format(role))
            conn.execute(psycopg.sql.SQL("SET ROLE {}").format(role))
            run = health.run_probes(conn, _policy(), now=_now(), only=("event_lag", "resource_utilization"))
            conn.execute("RESET ROLE")
        finally:
            conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(role))
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(role))
    by = {r.check_name: r for r in run.results}
    assert by["health.resource_utilization"].status == "error"
    assert "InsufficientPrivilege" in by["health.resource_utilization"].details["error"]
    assert by["health.event_lag"].status == "skipped"


@pytest.mark.calendar
def test_every_probe_passes_on_a_quiet_database_at_the_databases_instant(migrated_db: Database) -> None:
    """What a scheduled health run does at the database's instant (the probes read PostgreSQL's
    clock too: partitions covering now, session ages): nothing fails on a quiet database."""
    from flows.registry import REGISTRY

    planned = REGISTRY.schedules(settings.Policy())
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        now = clock.db_now(conn)
        run = health.run_probes(
            conn,
            _policy(),
            now=now,
            schedules={job: s.cron for job, s in planned.items()},
            timezones={job: s.timezone for job, s in planned.items()},
        )
        written, _metrics = health.record(conn, run)
    assert (run.window_start, run.window_end) == health.window_of(now)
    assert run.window_start <= now < run.window_end
    bad = [(r.check_name, r.target, r.status) for r in run.results if r.status in ("failed", "error")]
    assert bad == [] and run.count("passed") >= 6 and written == len(run.results)
    horizon = _one(run.results, "learning_events", "health.partition_horizon")
    assert horizon.observed is not None and horizon.observed["intervals_ahead"] > 1


# --- the flow ---------------------------------------------------------------------------------------


def _artifact(key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=50
        )
    return found


@pytest.mark.usefixtures("prefect_api")
def test_flow_passes_on_a_quiet_database(migrated_db: Database) -> None:
    state = flow_run("health")
    assert state.is_completed() and state.name == "Completed" and verdict_of(state).kind is Kind.DONE
    result = state.result()
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0
    assert result["counts"]["passed"] >= 6
    with migrated_db.connect() as conn:
        status, counts = conn.execute(
            "SELECT status, counts FROM pgtender_operations WHERE job = 'health'"
        ).fetchone()
        current = conn.execute(
            "SELECT count(*) FROM data_quality_checks WHERE suite = 'health' AND is_current"
        ).fetchone()[0]
        budget = conn.execute(
            "SELECT value FROM capacity_planning_metrics WHERE metric_name = 'health.run_db_ms'"
        ).fetchone()[0]
    assert status == "completed" and counts["checks"] == result["checks"] == current
    assert budget == pytest.approx(result["db_ms"])


@pytest.mark.usefixtures("prefect_api")
def test_flow_with_a_breach_ends_failed_with_an_artifact(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, ingested_at, event_type) VALUES (now() - interval '1 hour', now() - interval '1 hour', 'x')"
        )
    state = flow_run("health")
    assert state.is_failed()
    verdict = verdict_of(state)
    assert verdict.kind is Kind.PROBLEMS and "health.event_lag[learning_events]" in verdict.line
    with migrated_db.connect() as conn:
        status, counts = conn.execute(
            "SELECT status, counts FROM pgtender_operations WHERE job = 'health'"
        ).fetchone()
        row = conn.execute(
            "SELECT status, (observed_value->>'lag_seconds')::float8, flow_run_id FROM data_quality_checks"
            " WHERE check_name = 'health.event_lag' AND is_current"
        ).fetchone()
    # The job ran to the end and found a problem: its own ledger status, and the flow run ends
    # "Problems found" (a finding, not a crash).
    assert status == "problems" and counts["failed"] == 1
    assert row[0] == "failed" and row[1] >= 3600.0 and row[2] is not None
    artifacts = [a for a in _artifact("health-summary") if str(a.flow_run_id) == str(row[2])]
    assert len(artifacts) == 1 and artifacts[0].type == "table"
    assert "1 failed" in (artifacts[0].description or "")
