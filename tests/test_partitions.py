from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from structlog.testing import capture_logs

from flows import partitions
from flows.core import clock, db
from flows.core.ddl import Backoff, LockRetriesExhausted, RowCountMismatch
from flows.core.engine import Kind
from flows.core.errors import ConfigError
from flows.core.partitioning import catalog, intervals
from flows.core.policy import settings
from flows.core.policy.partitions import PartitionsPolicy, TablePolicy
from tests.calendar import CalendarClock
from tests.conftest import Database, flow_run, run_job, verdict_of
from tests.partitions_fixtures import WEIRD, count, create_weird_table, lock_held, partitions_of, policy

LE = "learning_events"


def _targets(conn, pol: PartitionsPolicy) -> dict[str, catalog.Target]:
    return {t.name: t for t in catalog.resolve_targets(conn, pol.enabled_tables())}


def _metric(conn, metric: str, resource: str) -> float:
    row = conn.execute(
        "SELECT value FROM capacity_planning_metrics WHERE metric_name = %s AND resource_name = %s"
        " ORDER BY measured_at DESC LIMIT 1",
        (metric, resource),
    ).fetchone()
    assert row is not None, (metric, resource)
    return float(row[0])


# ------------------------------------------------------------------ policy validation


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"interval": "fortnight"}, "interval"),
        ({"premake": 0}, "premake"),
        ({"retention": "3 fortnights"}, "is not an age"),
        ({"retention": "0 days"}, "is not an age"),
        ({"interval": "month", "retention": "20 days", "premake": 1}, "shorter than one month"),
        ({"interval": "month", "premake": 4, "retention": "3 months"}, "shorter than premake"),
        ({"interval": "week", "premake": 3, "retention": "20 days"}, "shorter than premake"),
        ({"archive": "shred"}, "archive"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_policy_rejects_impossible_settings(tmp_path: Path, table: dict, message: str) -> None:
    lines = [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in table.items()]
    path = tmp_path / "policy.toml"
    path.write_text("[partitions.tables.learning_events]\n" + "\n".join(lines).replace("'", '"') + "\n")
    with pytest.raises(ConfigError) as info:
        settings.load_policy(path)
    text = str(info.value)
    assert "\n" not in text and message in text and "partitions.tables.learning_events" in text


def test_policy_defaults_and_key_by_key_override(tmp_path: Path) -> None:
    defaults = PartitionsPolicy()
    assert set(defaults.tables) == {"learning_events", "system_performance_metrics"}
    assert defaults.tables[LE].premake >= 3 and defaults.tables[LE].interval == "month"
    path = tmp_path / "policy.toml"
    path.write_text(
        '[partitions.tables.learning_events]\nretention = "none"\n'
        "[partitions.tables.system_performance_metrics]\nenabled = false\n"
    )
    loaded = settings.load_policy(path).partitions
    assert loaded.tables[LE].retention is None and loaded.tables[LE].premake == 3
    assert list(loaded.enabled_tables()) == [LE]


def test_unknown_or_unsuitable_tables_are_config_errors_and_change_nothing(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE plain_t (ts timestamptz)")
        conn.execute("CREATE TABLE by_list (k text) PARTITION BY LIST (k)")
        conn.execute("CREATE TABLE by_int (k int) PARTITION BY RANGE (k)")
        before = partitions_of(conn, LE)
        for name, message in [
            ("no_such_table", "does not exist"),
            ("plain_t", "not a partitioned table"),
            ("by_list", "not RANGE-partitioned"),
            ("by_int", "not a date/time"),
        ]:
            pol = policy({LE: {}, name: {}})
            with pytest.raises(ConfigError, match=message):
                partitions.maintain_all(conn, pol)
        assert partitions_of(conn, LE) == before  # learning_events came first and was not touched
        assert count(conn, "capacity_planning_metrics") == 0


# ------------------------------------------------------------------ pure helpers


def test_interval_arithmetic_and_names() -> None:
    t = datetime(2026, 11, 22, 13, 5, tzinfo=UTC)
    assert intervals.floor_to(t, "month") == datetime(2026, 11, 1, tzinfo=UTC)
    assert intervals.floor_to(t, "week") == datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
    assert intervals.add_intervals(datetime(2026, 11, 1, tzinfo=UTC), "month", 3) == datetime(
        2027, 2, 1, tzinfo=UTC
    )
    assert intervals.subtract_age(datetime(2026, 3, 31, tzinfo=UTC), "1 month") == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    long = "x" * 60
    name = intervals.partition_name(long, datetime(2026, 1, 1, tzinfo=UTC))
    assert len(name.encode()) <= 63 and name.endswith("_p20260101")
    delays = [Backoff(100, 1000).delay_s(a, rand=lambda: 1.0) for a in range(1, 7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert Backoff(100, 1000).delay_s(3, rand=lambda: 0.0) == 0.2  # jitter: between cap/2 and cap


# ------------------------------------------------------------------ creation, idempotence


@pytest.mark.calendar
def test_creates_through_horizon_like_the_parent_and_second_run_is_noop(migrated_db: Database) -> None:
    pol = policy({LE: {"premake": 5}, "system_performance_metrics": {"enabled": False}})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute("GRANT SELECT, INSERT ON learning_events TO pgtender_checker")
        now = clock.db_now(conn)
        first = partitions.maintain_all(conn, pol, now=now)
        assert first is not None
        created = first[0].created
        current = intervals.floor_to(now, "month")
        expected = {
            intervals.partition_name(LE, intervals.add_intervals(current, "month", k)) for k in range(6)
        }
        assert expected <= set(partitions_of(conn, LE))
        assert set(created) == expected - {p for p in expected if p in _migration_partitions(now)}
        # indexes, constraints, owner, privileges as the parent
        parent_idx = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'learning_events'::regclass"
        ).fetchone()[0]
        for part in created:
            assert (
                conn.execute(
                    "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", (part,)
                ).fetchone()[0]
                == parent_idx
            )
            owner, acl = conn.execute(
                "SELECT pg_get_userbyid(relowner), relacl::text FROM pg_class WHERE relname = %s", (part,)
            ).fetchone()
            assert (
                owner
                == conn.execute(
                    "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'learning_events'"
                ).fetchone()[0]
            )
            assert "pgtender_checker=ar" in acl
            checks = conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'", (part,)
            ).fetchone()[0]
            assert checks >= 1
        horizon = _metric(conn, "partition_horizon_days", LE)
        assert horizon >= 5 * 28
        assert _metric(conn, "default_partition_rows", LE) == 0
        snapshot = partitions_of(conn, LE)
        second = partitions.maintain_all(conn, pol)
        assert second is not None and second[0].created == [] and second[0].rows_moved == 0
        assert partitions_of(conn, LE) == snapshot
        # rows route into the new partitions
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type) VALUES (%s, 'x')",
            (intervals.add_intervals(current, "month", 5),),
        )
        assert count(conn, f"{LE}_default") == 0


def _migration_partitions(now: datetime) -> set[str]:
    current = intervals.floor_to(now, "month")
    return {intervals.partition_name(LE, intervals.add_intervals(current, "month", k)) for k in range(-3, 3)}


def test_dry_run_changes_nothing(migrated_db: Database) -> None:
    pol = policy({LE: {"premake": 6}})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type) VALUES (now() - interval '5 months', 'x')"
        )
        before = partitions_of(conn, LE)
        results = partitions.maintain_all(conn, pol, dry_run=True)
        assert results is not None
        le = next(r for r in results if r.table == LE)
        assert len(le.created) == 5 and le.rows_moved == 1  # 4 ahead + the rescued month
        assert partitions_of(conn, LE) == before
        assert count(conn, f"{LE}_default") == 1
        assert count(conn, "capacity_planning_metrics") == 0


# ------------------------------------------------------------------ DEFAULT rescue


@pytest.mark.calendar
def test_default_rescue_moves_exact_counts_and_leaves_out_of_range_rows(migrated_db: Database) -> None:
    pol = policy({LE: {"premake": 3, "retention": "none"}, "system_performance_metrics": {"enabled": False}})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type, payload)"
            " SELECT date_trunc('month', now() - interval '5 months', 'UTC') + g * interval '1 minute', 'old', jsonb_build_object('g', g)"
            " FROM generate_series(0, 136) g"
        )  # 137 rows in a month that has no partition
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type)"
            " SELECT date_trunc('month', now() + interval '8 months', 'UTC') + g * interval '1 hour', 'early'"
            " FROM generate_series(1, 11) g"
        )  # 11 rows beyond the horizon: they wait in DEFAULT
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type) VALUES ('2199-01-01', 'y2199'), ('1970-01-01', 'epoch')"
        )
        total = count(conn, LE)
        digest_before = conn.execute(
            "SELECT md5(string_agg(id::text || occurred_at::text, ',' ORDER BY id)) FROM learning_events WHERE event_type = 'old'"
        ).fetchone()[0]
        with capture_logs() as logs:
            (result,) = partitions.maintain_all(conn, pol)
        month = conn.execute(
            "SELECT date_trunc('month', now() - interval '5 months', 'UTC') AT TIME ZONE 'UTC'"
        ).fetchone()[0]
        rescued = intervals.partition_name(LE, month.replace(tzinfo=UTC))
        assert rescued in result.created
        assert result.rows_moved == 137
        assert count(conn, rescued) == 137
        assert count(conn, f"{LE}_default") == 11 + 2
        assert result.default_rows == 13 and result.rows_beyond_horizon == 12 and result.rows_too_old == 1
        assert count(conn, LE) == total
        assert (
            conn.execute(
                "SELECT md5(string_agg(id::text || occurred_at::text, ',' ORDER BY id)) FROM learning_events WHERE event_type = 'old'"
            ).fetchone()[0]
            == digest_before
        )
        assert _metric(conn, "default_partition_rows", LE) == 13
        warned = [e for e in logs if e["event"] == "rows left in DEFAULT"]
        assert warned and warned[0]["rows"] == 13 and warned[0]["table"] == "public.learning_events"


def test_default_rescue_mismatch_rolls_back(migrated_db: Database) -> None:
    pol = policy({LE: {"retention": "none"}, "system_performance_metrics": {"enabled": False}})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type)"
            " SELECT date_trunc('month', now() - interval '6 months', 'UTC') + g * interval '1 hour', CASE WHEN g % 2 = 0 THEN 'keep' ELSE 'x' END"
            " FROM generate_series(0, 9) g"
        )
        # A trigger that silently refuses some deletes: the counts disagree -> the month rolls back.
        conn.execute(
            "CREATE FUNCTION refuse_keep() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF OLD.event_type = 'keep' THEN RETURN NULL; END IF; RETURN OLD; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON learning_events_default FOR EACH ROW EXECUTE FUNCTION refuse_keep()"
        )
        before = partitions_of(conn, LE)
        (target,) = [t for t in catalog.resolve_targets(conn, pol.enabled_tables())]
        with pytest.raises(RowCountMismatch, match="rolled back"):
            partitions.maintain_table(conn, target, now=clock.db_now(conn), retry=pol)
        month = conn.execute(
            "SELECT date_trunc('month', now() - interval '6 months', 'UTC') AT TIME ZONE 'UTC'"
        ).fetchone()[0]
        name = intervals.partition_name(LE, month.replace(tzinfo=UTC))
        assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None
        assert count(conn, f"{LE}_default") == 10
        # One transaction per rescued month: the premake partitions (nothing to move) are still
        # created, so a rescue that keeps failing never holds the horizon hostage.
        assert set(partitions_of(conn, LE)) - set(before) == {
            intervals.partition_name(
                LE, intervals.add_intervals(intervals.floor_to(clock.db_now(conn), "month"), "month", 3)
            )
        }


# ------------------------------------------------------------------ locks and concurrency


def test_lock_held_on_parent_fails_cleanly_after_retries(migrated_db: Database) -> None:
    pol = policy({LE: {"premake": 4}, "system_performance_metrics": {"enabled": False}}, attempts=3)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        target = _targets(conn, pol)[LE]
        before = partitions_of(conn, LE)
        tables_before = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'learning_events_p%'"
        ).fetchone()[0]
        with (
            lock_held(migrated_db.dsn, LE),
            capture_logs() as logs,
            pytest.raises(LockRetriesExhausted, match="gave up after 3 tries of 100 ms"),
        ):
            partitions.maintain_table(conn, target, now=clock.db_now(conn), retry=pol)
        retries = [e for e in logs if e["event"] == "lock busy, will retry"]
        assert [e["attempt"] for e in retries] == [1, 2] and all(
            e["error"] == "LockNotAvailable" for e in retries
        )
        assert partitions_of(conn, LE) == before
        assert (
            conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'learning_events_p%'").fetchone()[
                0
            ]
            == tables_before
        )


def test_lock_released_while_retrying_then_succeeds(migrated_db: Database) -> None:
    pol = policy({LE: {"premake": 4}, "system_performance_metrics": {"enabled": False}}, attempts=60)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        target = _targets(conn, pol)[LE]
        with lock_held(migrated_db.dsn, LE, mode="SHARE", release_after=0.6), capture_logs() as logs:
            result = partitions.maintain_table(conn, target, now=clock.db_now(conn), retry=pol)
        assert len(result.created) == 2  # months +3 and +4; the migration made up to +2
        assert any(e["event"] == "lock busy, will retry" for e in logs)
        assert set(result.created) <= set(partitions_of(conn, LE))


def test_two_concurrent_maintainers_create_each_partition_once(migrated_db: Database) -> None:
    pol = policy({LE: {"premake": 12}, "system_performance_metrics": {"enabled": False}}, attempts=50)
    results: list[partitions.TableResult] = []
    errors: list[BaseException] = []
    with migrated_db.connect() as conn:
        now = clock.db_now(conn)

    def worker() -> None:
        try:
            with db.connect(migrated_db.dsn, autocommit=True) as c:
                results.append(partitions.maintain_table(c, _targets(c, pol)[LE], now=now, retry=pol))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    created = [p for r in results for p in r.created]
    assert len(created) == len(set(created)) == 10  # +3 .. +12, each by exactly one of them
    with migrated_db.connect() as conn:
        assert set(created) <= set(partitions_of(conn, LE))


@pytest.mark.calendar
def test_month_boundary_crossed_by_writers_and_runs(
    calendar_clock: CalendarClock, migrated_db: Database
) -> None:
    """Two seconds before the month ends: a run keeps the next months' partitions in place (from
    its one reading of now), rows written across midnight all land in their month's partition, and
    after midnight the rescue moves exactly the DEFAULT rows the new horizon covers."""
    pol = policy({LE: {"premake": 3, "retention": "none"}, "system_performance_metrics": {"enabled": False}})
    boundary = intervals.add_intervals(intervals.floor_to(calendar_clock.instant, "month"), "month", 1)
    entering = intervals.add_intervals(boundary, "month", 3)  # joins the horizon at midnight
    beyond = intervals.add_intervals(boundary, "month", 4)  # beyond it on both sides
    calendar_clock.move_to(boundary - timedelta(seconds=2))
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:  # one row a transaction, stamped with the server's clock, across midnight
        with psycopg.connect(migrated_db.dsn, autocommit=True) as w:
            while not stop.is_set():
                w.execute(
                    "INSERT INTO learning_events (occurred_at, event_type) VALUES (clock_timestamp(), 'w')"
                )
                written.append(1)
                stop.wait(0.01)

    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        for at, n in ((entering, 5), (beyond, 7)):
            conn.execute(
                "INSERT INTO learning_events (occurred_at, event_type)"
                " SELECT %s + g * interval '1 hour', 'early' FROM generate_series(1, %s) g",
                (at, n),
            )
        writer = threading.Thread(target=write)
        writer.start()
        try:
            before = partitions.maintain_all(conn, pol)
            assert before is not None
            assert intervals.partition_name(LE, boundary) in partitions_of(conn, LE)
            while clock.db_now(conn) < boundary + timedelta(seconds=1):
                time.sleep(0.05)
        finally:
            stop.set()
            writer.join()
        (le_before,) = before
        assert le_before.rows_moved == 0 and le_before.rows_beyond_horizon == 12
        old_month, new_month = (
            conn.execute(
                "SELECT count(*) FROM learning_events WHERE event_type = 'w' AND occurred_at >= %s"
                " AND occurred_at < %s",
                (lo, hi),
            ).fetchone()[0]
            for lo, hi in ((boundary - timedelta(days=1), boundary), (boundary, boundary + timedelta(days=1)))
        )
        assert old_month > 0 and new_month > 0 and old_month + new_month == len(written)
        assert count(conn, f"{LE}_default") == 12  # not one writer row
        for month in (intervals.floor_to(boundary - timedelta(seconds=1), "month"), boundary):
            name = intervals.partition_name(LE, month)
            assert conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE event_type = 'w'").format(sql.Identifier(name))
            ).fetchone()[0] == (old_month if month < boundary else new_month)

        (after,) = partitions.maintain_all(conn, pol)  # after midnight: a new current month
        assert intervals.partition_name(LE, entering) in after.created
        assert after.rows_moved == 5 and after.default_rows == 7 and after.rows_beyond_horizon == 7
        assert count(conn, intervals.partition_name(LE, entering)) == 5


def test_second_run_is_skipped_while_first_holds_the_advisory_lock(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_config(tmp_path, monkeypatch, "[partitions.tables.learning_events]\npremake = 6\n")
    with (
        db.connect(migrated_db.dsn, autocommit=True) as holder,
        db.connect(migrated_db.dsn, autocommit=True) as conn,
    ):
        holder.execute("SELECT pg_advisory_lock(hashtext('pgtender.job'), hashtext('partitions'))")
        before = partitions_of(conn, LE)
        with capture_logs() as logs:
            report = run_job("partitions")
        assert report.verdict.kind is Kind.SKIPPED and report.verdict.exit_code == 0
        assert "holds the advisory lock" in report.verdict.line
        assert any(e["event"] == "skipped" and "holds the advisory lock" in e["reason"] for e in logs)
        assert partitions_of(conn, LE) == before
        assert conn.execute(
            "SELECT status, counts FROM pgtender_operations WHERE job = 'partitions'"
        ).fetchall() == [("skipped", {})]
        assert count(conn, "capacity_planning_metrics") == 0


def test_writers_are_not_blocked_by_a_noop_pass(migrated_db: Database) -> None:
    """A pass with nothing to do takes no lock that conflicts with a writer's ROW EXCLUSIVE."""
    pol = policy({LE: {}, "system_performance_metrics": {}})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        partitions.maintain_all(conn, pol)
        writer = psycopg.connect(migrated_db.dsn)
        try:
            # The writer holds ROW EXCLUSIVE on the parent and its partitions for the whole pass.
            writer.execute("INSERT INTO learning_events (occurred_at, event_type) VALUES (now(), 'w')")
            writer.execute("INSERT INTO learning_events (occurred_at, event_type) VALUES ('2199-01-01', 'w')")
            strict = policy({LE: {}, "system_performance_metrics": {}}, attempts=1, lock_timeout_ms=50)
            result = partitions.maintain_all(conn, strict)
            assert result is not None and all(r.created == [] for r in result)
        finally:
            writer.rollback()
            writer.close()


# ------------------------------------------------------------------ hostile names


def test_table_names_with_quotes_spaces_and_semicolons(migrated_db: Database) -> None:
    pol = policy({WEIRD: {"interval": "week", "premake": 3, "retention": "8 weeks"}, LE: {"enabled": False},
                  "system_performance_metrics": {"enabled": False}})  # fmt: skip
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        create_weird_table(conn)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (ts, note) VALUES (now() - interval '2 weeks', 'past'), (now(), 'now')"
            ).format(sql.Identifier(WEIRD))
        )
        (result,) = partitions.maintain_all(conn, pol)
        assert len(result.created) == 5 and result.rows_moved == 2  # 4 weeks ahead + the past week
        names = partitions_of(conn, WEIRD)
        assert all(n.startswith(WEIRD + "_p") or n == WEIRD + "_default" for n in names)
        assert count(conn, WEIRD + "_default") == 0 and count(conn, WEIRD) == 2
        assert _metric(conn, "partition_horizon_days", WEIRD) >= 21
        assert partitions.maintain_all(conn, pol)[0].created == []
        conn.execute(
            sql.SQL("INSERT INTO {} (ts, note) VALUES (now() + interval '3 weeks', 'ahead')").format(
                sql.Identifier(WEIRD)
            )
        )
        assert count(conn, WEIRD + "_default") == 0
        ids = conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(WEIRD))).fetchall()
        assert [r[0] for r in ids] == [1, 2, 3]  # one identity sequence, the parent's


def test_table_policy_model_is_frozen() -> None:
    with pytest.raises(Exception, match="frozen"):
        TablePolicy().premake = 9  # type: ignore[misc]


# ------------------------------------------------------------------ Prefect flow


def _write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "pgtender.toml"
    path.write_text(text)
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))


@pytest.mark.usefixtures("prefect_api")
def test_partitions_flow_records_ledger_and_metrics(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_config(
        tmp_path,
        monkeypatch,
        "[partitions]\nlock_timeout_ms = 500\n[partitions.tables.learning_events]\npremake = 4\n",
    )
    with migrated_db.connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type) VALUES (now() - interval '4 months', 'x')"
        )
    state = flow_run("partitions")
    assert state.is_completed() and verdict_of(state).kind is Kind.DONE
    result = state.result()
    assert result["partitions_created"] == 4 and result["rows_moved"] == 1  # +3, +4 (LE), +3 (SPM), -4 (LE)
    with migrated_db.connect() as conn:
        status, counts, run_id = conn.execute(
            "SELECT status, counts, flow_run_id FROM pgtender_operations WHERE job = 'partitions'"
        ).fetchone()
        assert status == "completed" and counts["partitions_created"] == 4 and counts["rows_moved"] == 1
        metrics = conn.execute(
            "SELECT metric_name, resource_name, resource_type FROM capacity_planning_metrics WHERE flow_run_id = %s ORDER BY 1, 2",
            (run_id,),
        ).fetchall()
        assert metrics == [
            ("default_partition_rows", LE, "table"),
            ("default_partition_rows", "system_performance_metrics", "table"),
            ("partition_horizon_days", LE, "table"),
            ("partition_horizon_days", "system_performance_metrics", "table"),
        ]
    again = run_job("partitions")
    assert again.verdict.kind is Kind.DONE and again.results[0].result["partitions_created"] == 0


@pytest.mark.usefixtures("prefect_api")
def test_partitions_flow_skips_when_locked_and_rejects_unknown_tables(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with migrated_db.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('pgtender.job'), hashtext('partitions'))")
        state = flow_run("partitions")
        assert state.is_completed()
        verdict = verdict_of(state)
        assert verdict.kind is Kind.SKIPPED and "advisory lock" in verdict.line
    with migrated_db.connect() as conn:
        assert (
            conn.execute("SELECT status FROM pgtender_operations WHERE job = 'partitions'").fetchone()[0]
            == "skipped"
        )
        before = partitions_of(conn, LE)
    _write_config(tmp_path, monkeypatch, "[partitions.tables.nope]\npremake = 3\n")
    state = flow_run("partitions", dry_run=True)
    assert state.is_failed()
    verdict = verdict_of(state)
    assert verdict.kind is Kind.BAD_INPUT and verdict.exit_code == 2
    assert "table public.nope does not exist" in verdict.line
    with migrated_db.connect() as conn:
        # bad input once the database was reached: a rejected row, nothing changed
        assert conn.execute(
            "SELECT status FROM pgtender_operations WHERE job = 'partitions' ORDER BY started_at"
        ).fetchall() == [("skipped",), ("rejected",)]
        assert partitions_of(conn, LE) == before
