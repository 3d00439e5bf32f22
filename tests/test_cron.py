"""Taking over pg_cron, against a real PostgreSQL with pg_cron loaded.

The server is PGTENDER_CRON_TEST_DATABASE_URL (``.ci/setup-pg-cron.sh`` makes one on port 5433,
pg_cron in its ``postgres`` database). Each test gets a fresh migrated database there (the tended
one) with the seed README's five maintenance jobs scheduled into it through
``cron.schedule_in_database``, plus two jobs pgtender does not replace. Their run history is made
by running each job's command in the tended database and recording the outcome in
``cron.job_run_details`` as pg_cron's worker does (pg_cron 1.4 schedules by the minute: waiting
for real runs would take minutes), so some runs succeed and the quality job's fail for real.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

from flows import cron
from flows.core import db, migrations, pgcron
from flows.core.errors import ConfigError
from flows.core.policy import settings
from flows.registry import REGISTRY
from tests.conftest import Database

# job -> cron of every job pgtender schedules (what the CLI hands analyze and migrate)
SCHEDULES = {job: f"{s.cron} {s.timezone}" for job, s in REGISTRY.schedules(settings.Policy()).items()}

CRON_URL = os.environ.get("PGTENDER_CRON_TEST_DATABASE_URL")
needs_cron = pytest.mark.skipif(not CRON_URL, reason="PGTENDER_CRON_TEST_DATABASE_URL is not set")
pytestmark = pytest.mark.real_clock  # the pg_cron cluster's clock is not the one the matrix moves

FUNCTIONS = """
CREATE FUNCTION create_monthly_partitions() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT count(*) FROM pg_inherits WHERE inhparent = 'learning_events'::regclass);
END $$;
CREATE FUNCTION cleanup_old_learning_events(keep interval DEFAULT '90 days') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    DELETE FROM learning_events WHERE occurred_at < now() - keep;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
CREATE FUNCTION run_data_quality_checks() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'data quality check failed: % learning events without session',
        (SELECT count(*) + 3 FROM learning_events WHERE session_id IS NULL);
END $$;
CREATE FUNCTION check_system_health() RETURNS boolean LANGUAGE sql AS $$
    SELECT count(*) < 1000 FROM pg_stat_activity
$$;
CREATE FUNCTION recompute_recommendations() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 / 0;
END $$;
"""

# The seed README's "Automated Jobs": name, schedule, command (as such a schema would write them).
SEED_JOBS = [
    ("partition-creation", "0 0 1 * *", "SELECT create_monthly_partitions()", "partitions"),
    ("data-cleanup", "0 3 * * 0", "SELECT cleanup_old_learning_events(interval '90 days')", "retention"),
    (
        "view-refresh",
        "*/15 * * * *",
        "REFRESH MATERIALIZED VIEW mv_pattern_trend; REFRESH MATERIALIZED VIEW mv_llm_usage_daily",
        "views",
    ),
    ("quality-checks", "0 1 * * *", "SELECT run_data_quality_checks()", "quality"),
    ("health-monitoring", "*/5 * * * *", "SELECT check_system_health()", "health"),
]
# Jobs pgtender does not take over: one it has no job for, one in another database.
OTHER_JOBS = [("recommendations", "30 4 * * *", "SELECT recompute_recommendations()")]


@dataclass
class CronEnv:
    tended: Database
    cron_dsn: str
    jobids: dict[str, int]

    def cron(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.cron_dsn, autocommit=True)

    def jobs(self) -> list[tuple[Any, ...]]:
        with self.cron() as conn:
            return conn.execute(
                "SELECT jobname, schedule, command, database, username, active FROM cron.job"
                " WHERE database = %s OR jobname LIKE 'pgt-test-%%' ORDER BY jobname",
                (self.tended.name,),
            ).fetchall()


def _run_and_record(
    cron_conn: psycopg.Connection[Any], tended_dsn: str, jobid: int, command: str, when: datetime
) -> str:
    """Run a job's command in its database and record the outcome like pg_cron's worker."""
    with psycopg.connect(tended_dsn, autocommit=True) as target:
        try:
            cur = target.execute(command)
            status, message = "succeeded", cur.statusmessage or ""
        except psycopg.Error as exc:
            status, message = "failed", f"ERROR:  {exc.diag.message_primary}"
    cron_conn.execute(
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
        " return_message, start_time, end_time)"
        " SELECT jobid, pg_backend_pid(), database, username, command, %s, %s, %s, %s + interval '40 ms'"
        "   FROM cron.job WHERE jobid = %s",
        (status, message, when, when, jobid),
    )
    return status


def _cleanup(cron_conn: psycopg.Connection[Any], tended: str) -> None:
    ids = [
        r[0]
        for r in cron_conn.execute(
            "SELECT jobid FROM cron.job WHERE database = %s OR jobname LIKE 'pgt-test-%%'", (tended,)
        ).fetchall()
    ]
    for jobid in ids:
        cron_conn.execute("SELECT cron.unschedule(%s::bigint)", (jobid,))
    cron_conn.execute(
        "DELETE FROM cron.job_run_details WHERE database = %s OR jobid = ANY(%s)", (tended, ids)
    )


@pytest.fixture
def cron_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[CronEnv]:
    assert CRON_URL
    name = f"pgtender_cron_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(CRON_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    tended = Database(CRON_URL, name)
    monkeypatch.setenv("PGTENDER_DATABASE_URL", tended.dsn)
    cron_dsn = CRON_URL
    try:
        with db.connect(tended.dsn, autocommit=True) as conn:
            migrations.migrate(conn)
            conn.execute(FUNCTIONS)
            conn.execute(
                "INSERT INTO learning_events (id, occurred_at, event_type, source, session_id, user_id)"
                " SELECT gen_random_uuid(), now() - interval '1 hour' * n, 'model_prediction', 'api',"
                "        NULL, 'u' || n FROM generate_series(1, 4) AS n"
            )
        jobids: dict[str, int] = {}
        with psycopg.connect(cron_dsn, autocommit=True) as cron_conn:
            _cleanup(cron_conn, name)
            for jobname, schedule, command, *_ in [*SEED_JOBS, *OTHER_JOBS]:
                row = cron_conn.execute(
                    "SELECT cron.schedule_in_database(%s, %s, %s, %s)", (jobname, schedule, command, name)
                ).fetchone()
                assert row is not None
                jobids[jobname] = int(row[0])
            # Same kind of work, other database: not pgtender's to replace.
            row = cron_conn.execute(
                "SELECT cron.schedule('pgt-test-other-db-health', '*/5 * * * *', 'SELECT 1 AS health_check')"
            ).fetchone()
            assert row is not None
            jobids["pgt-test-other-db-health"] = int(row[0])
            start = datetime.now(UTC) - timedelta(hours=3)
            for i in range(3):
                for jobname, _, command, *_ in [*SEED_JOBS, *OTHER_JOBS]:
                    _run_and_record(
                        cron_conn, tended.dsn, jobids[jobname], command, start + timedelta(hours=i)
                    )
        yield CronEnv(tended, cron_dsn, jobids)
    finally:
        db.close_pools()
        with psycopg.connect(cron_dsn, autocommit=True) as cron_conn:
            _cleanup(cron_conn, name)
        with psycopg.connect(CRON_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ---------------------------------------------------------------- no database needed


@pytest.mark.parametrize(
    ("command", "job"),
    [
        ("SELECT create_monthly_partitions()", "partitions"),
        ("CALL partman.run_maintenance_proc()", "partitions"),
        ("SELECT drop_old_partitions('learning_events')", "retention"),
        ("DELETE FROM learning_events WHERE occurred_at < now() - interval '90 days'", "retention"),
        ("SELECT cleanup_old_learning_events()", "retention"),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_daily_learning_events", "views"),
        ("SELECT refresh_analytics_views()", "views"),
        ("SELECT run_data_quality_checks()", "quality"),
        ("SELECT check_system_health()", "health"),
        ("SELECT monitor_resources()", "health"),
        ("VACUUM ANALYZE ml_models", "upkeep"),
        ("ANALYZE learning_events", "upkeep"),
        ("analyse learning_events_partitioned", "upkeep"),
        ("REINDEX TABLE CONCURRENTLY learning_events", "upkeep"),
        ("SELECT 1; vacuum (verbose, analyze) pattern_occurrences", "upkeep"),
        (
            "DELETE FROM query_performance_logs WHERE logged_at < now() - interval '30 days'; VACUUM",
            "retention",
        ),
        ("REFRESH MATERIALIZED VIEW mv_pattern_trend; ANALYZE mv_pattern_trend", "views"),
        ("SELECT analyze_user_behaviour()", None),
        ("SELECT recompute_recommendations()", None),
    ],
)
def test_replacement_by_command(command: str, job: str | None) -> None:
    assert pgcron.replacement_for(command) == job


def test_without_pg_cron_analyze_says_so_and_migrate_refuses(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        analysis = cron.analyze(conn, dsn=migrated_db.dsn, schedules=SCHEDULES)
        assert not analysis.installed and analysis.jobs == []
        assert "nothing to take over" in cron.analysis_text(analysis)
        assert pgcron.cron_failures(conn, datetime.now(UTC) - timedelta(days=1), migrated_db.dsn) == []
        with pytest.raises(ConfigError, match="nothing to take over"):
            cron.migrate(conn, dsn=migrated_db.dsn, schedules=SCHEDULES, execute=True)
    assert migrated_db.scalar("SELECT count(*) FROM pgtender_operations") == 0


# ---------------------------------------------------------------- against pg_cron


@needs_cron
def test_analyze_maps_the_seed_jobs(cron_env: CronEnv) -> None:
    with db.connect(cron_env.tended.dsn, autocommit=True) as conn:
        analysis = cron.analyze(conn, dsn=cron_env.tended.dsn, schedules=SCHEDULES)
    assert analysis.installed and analysis.cron_database == "postgres"
    by_name = {a.job.jobname: a for a in analysis.jobs}
    for jobname, schedule, _command, job in SEED_JOBS:
        a = by_name[jobname]
        assert a.replaced_by == job, a.note
        assert a.job.schedule == schedule and a.schedule_here == SCHEDULES[job]
        assert a.runs == 3
    quality = by_name["quality-checks"]
    assert quality.failures == 3 and quality.last_status == "failed"
    assert "data quality check failed: 7 learning events without session" in (
        quality.last_failure_message or ""
    )
    assert (
        by_name["health-monitoring"].failures == 0 and by_name["health-monitoring"].last_status == "succeeded"
    )
    assert by_name["recommendations"].replaced_by is None and by_name["recommendations"].failures == 3
    other = by_name["pgt-test-other-db-health"]
    assert other.replaced_by is None and "runs in database 'postgres'" in other.note
    text = cron.analysis_text(analysis)
    assert "quality-checks" in text and "0 1 * * *" in text and "division by zero" in text
    assert "5 of 7 job(s) replaced by pgtender" in text


@needs_cron
def test_migrate_dry_run_changes_nothing_execute_is_reversible(
    cron_env: CronEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.edge.cli import main

    before = cron_env.jobs()
    main(["cron", "migrate", "--dry-run"])
    out = capsys.readouterr().out
    assert "would unschedule (dry run; --execute to do it) 5 pg_cron job(s)" in out
    assert out.count("SELECT cron.schedule_in_database(") == 5
    assert cron_env.jobs() == before
    assert cron_env.tended.scalar("SELECT count(*) FROM pgtender_operations") == 0

    main(["cron", "migrate", "--execute"])
    out = capsys.readouterr().out
    assert "unscheduled 5 pg_cron job(s)" in out and "recorded in the ledger" in out
    after = cron_env.jobs()
    assert sorted(r[0] for r in after) == ["pgt-test-other-db-health", "recommendations"]
    with cron_env.tended.connect() as conn:
        status, params, counts = conn.execute(
            "SELECT status, params, counts FROM pgtender_operations WHERE job = 'cron'"
        ).fetchone()
    assert status == "completed" and counts["unscheduled"] == 5
    assert counts["jobs_before"] - counts["jobs_after"] == 5
    assert sorted(j["jobname"] for j in params["jobs"]) == sorted(j[0] for j in SEED_JOBS)

    # Nothing left to take over; a second run does nothing.
    with db.connect(cron_env.tended.dsn, autocommit=True) as conn:
        again = cron.migrate(conn, dsn=cron_env.tended.dsn, schedules=SCHEDULES, execute=True)
    assert again.jobs == [] and "nothing to migrate" in cron.migration_text(again)

    # The stored statements put every job back exactly as it was.
    with cron_env.cron() as cron_conn:
        for statement in params["restore"]:
            cron_conn.execute(statement)
    assert cron_env.jobs() == before


@needs_cron
def test_migrate_rolls_back_on_count_mismatch(cron_env: CronEnv) -> None:
    """Someone schedules a job while migrate unschedules: the counts disagree, nothing changes."""
    before = cron_env.jobs()
    last = cron_env.jobids["health-monitoring"]
    outcome: list[BaseException | None] = []

    def run_migrate() -> None:
        try:
            with db.connect(cron_env.tended.dsn, autocommit=True) as conn:
                cron.migrate(conn, dsn=cron_env.tended.dsn, schedules=SCHEDULES, execute=True)
            outcome.append(None)
        except Exception as exc:  # handed to the test thread
            outcome.append(exc)

    with cron_env.cron() as holder, cron_env.cron() as other:
        # Hold the last job's row so that migrate waits in the middle of its transaction.
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM cron.job WHERE jobid = %s FOR UPDATE", (last,))
        worker = threading.Thread(target=run_migrate)
        worker.start()
        for _ in range(200):
            waiting = other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%%cron.unschedule%%'"
            ).fetchone()
            if waiting and waiting[0]:
                break
            threading.Event().wait(0.01)
        other.execute("SELECT cron.schedule('pgt-test-sneaky', '0 5 * * *', 'SELECT 1')")
        holder.execute("COMMIT")
        worker.join(30)
    assert len(outcome) == 1 and outcome[0] is not None and "rolled back" in str(outcome[0])
    with cron_env.cron() as cron_conn:
        cron_conn.execute("SELECT cron.unschedule('pgt-test-sneaky')")
    assert cron_env.jobs() == before  # every replaced job is still scheduled
    with cron_env.tended.connect() as conn:
        rows = conn.execute("SELECT status, error FROM pgtender_operations WHERE job = 'cron'").fetchall()
    assert len(rows) == 1 and rows[0][0] == "failed" and "rolled back" in rows[0][1]


@needs_cron
def test_cron_failures_reports_remaining_jobs(cron_env: CronEnv) -> None:
    since = datetime.now(UTC) - timedelta(days=1)
    with db.connect(cron_env.tended.dsn, autocommit=True) as conn:
        failures = pgcron.cron_failures(conn, since, cron_env.tended.dsn)
        assert sorted({(f.jobname, f.replaced_by) for f in failures}, key=str) == sorted(
            {("quality-checks", "quality"), ("recommendations", None)}, key=str
        )
        assert len(failures) == 6 and all(f.return_message for f in failures)
        assert failures[0].start_time >= failures[-1].start_time
        assert pgcron.cron_failures(conn, datetime.now(UTC) + timedelta(minutes=1), cron_env.tended.dsn) == []
        cron.migrate(conn, dsn=cron_env.tended.dsn, schedules=SCHEDULES, execute=True)
        remaining = pgcron.cron_failures(conn, since, cron_env.tended.dsn)
    assert {f.jobname for f in remaining} == {"recommendations"}
    assert "division by zero" in (remaining[0].return_message or "")


@needs_cron
def test_cli_analyze_prints_the_table(cron_env: CronEnv, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.edge.cli import main

    main(["cron", "analyze"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("jobid"))
    assert "replaced by" in header and "schedule here" in header and "failed" in header
    row = next(line for line in out.splitlines() if "view-refresh" in line and "*/15" in line)
    assert "views" in row and "3" in row
    assert conninfo.conninfo_to_dict(cron_env.tended.dsn)["dbname"] in out


@needs_cron
def test_health_reports_failures_of_remaining_cron_jobs(cron_env: CronEnv) -> None:
    from flows import health

    policy = settings.HealthPolicy(cron_lookback_minutes=24 * 60)
    with db.connect(cron_env.tended.dsn, autocommit=True) as conn:
        before = health.run_probes(
            conn, policy, now=datetime.now(UTC), only=("cron_jobs",), dsn=cron_env.tended.dsn
        ).results
        cron.migrate(conn, dsn=cron_env.tended.dsn, schedules=SCHEDULES, execute=True)
        after = health.run_probes(
            conn, policy, now=datetime.now(UTC), only=("cron_jobs",), dsn=cron_env.tended.dsn
        ).results
    assert [(r.check_name, r.status) for r in before] == [("health.cron_failures", "failed")]
    assert before[0].observed == {"failed_runs": 6, "jobs": ["quality-checks", "recommendations"]}
    assert after[0].status == "failed"
    assert after[0].observed == {"failed_runs": 3, "jobs": ["recommendations"]}


def test_health_cron_probe_skips_without_pg_cron(migrated_db: Database) -> None:
    from flows import health

    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        results = health.run_probes(
            conn, settings.HealthPolicy(), now=datetime.now(UTC), only=("cron_jobs",), dsn=migrated_db.dsn
        ).results
    assert [(r.check_name, r.status) for r in results] == [("health.cron_failures", "skipped")]
