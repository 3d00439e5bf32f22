from __future__ import annotations

import gzip
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from structlog.testing import capture_logs

from flows import partitions, retention
from flows.core import clock, db
from flows.core.ddl import LockRetriesExhausted, RowCountMismatch
from flows.core.engine import Kind
from flows.core.errors import ConfigError
from flows.core.partitioning import catalog, intervals
from flows.core.policy import settings
from flows.core.policy.partitions import RetentionPolicy
from flows.retention import archive, expired, partitioned, plain, restore
from tests.calendar import CalendarClock
from tests.catalog import fingerprint
from tests.conftest import Database, flow_run, run_job, verdict_of
from tests.partitions_fixtures import (
    WEIRD,
    count,
    create_weird_table,
    fast_retry,
    lock_held,
    partitions_of,
    policy,
    rows_digest,
)

LE = "learning_events"
SPM = "system_performance_metrics"
QPL = "query_performance_logs"


def _policy(tables: dict[str, Any], tmp_path: Path | None = None, **retention: Any) -> settings.Policy:
    plain = retention.pop("plain", {})
    rp = {**fast_retry(), "plain": plain, **retention}
    if tmp_path is not None:
        rp.setdefault("dump_dir", str(tmp_path / "dumps"))
    return settings.Policy(partitions=policy(tables), retention=RetentionPolicy.model_validate(rp))


def _only_plain(**enabled: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        n: {"enabled": False}
        for n in ("query_performance_logs", "llm_interactions", "pgtender_operations", "data_quality_checks")
    }
    base.update(enabled)
    return base


# The oldest partition migration 0005 made: three months before the month the template was
# migrated in (the session's instant; tests start there).
OLDEST = "(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '3 months') AT TIME ZONE 'UTC'"


def _load_months(conn, table: str = LE) -> None:
    """One row an hour from the start of the oldest partition until an hour ago (three to four
    months, whatever the day of the month: no row falls into DEFAULT), and 2 rows in each of the
    next two months."""
    hours = f"generate_series({OLDEST}, now() - interval '1 hour', interval '1 hour') g"
    if table == LE:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type, payload)"
            f" SELECT g, 'e', jsonb_build_object('g', g) FROM {hours}"
        )
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type)"
            " SELECT date_trunc('month', now(), 'UTC') + m * interval '1 month' + interval '1 day', 'future' FROM generate_series(1, 2) m"
        )
    else:
        conn.execute(
            "INSERT INTO system_performance_metrics (recorded_at, metric_name, value)"
            f" SELECT g, 'cpu', extract(epoch FROM g) FROM {hours}"
        )


def _expired_names(conn, table: str, age: str) -> list[str]:
    """Partitions wholly older than now - age (the test's own, SQL-side reckoning)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'"
        " AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']*)''\\)'))[1]::timestamptz"
        "     <= now() - %s::interval ORDER BY 1",
        (table, age),
    ).fetchall()
    return [r[0] for r in rows]


# ------------------------------------------------------------------ dry run


def test_dry_run_lists_everything_and_changes_nothing(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy(
        {
            LE: {"retention": "1 month", "premake": 1, "archive": "dump"},
            SPM: {"retention": "2 months", "premake": 1, "archive": "keep"},
        },
        tmp_path,
        plain=_only_plain(query_performance_logs={"column": "logged_at", "retention": "7 days"}),
    )
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn, LE)
        _load_months(conn, SPM)
        conn.execute(
            "INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms)"
            " SELECT now() - (g + 0.5) * interval '1 day', 'q', 1 FROM generate_series(0, 19) g"
        )
        catalog = fingerprint(conn)
        digests = {t: rows_digest(conn, t) for t in (LE, SPM, QPL)}
        out = retention.expire_all(conn, pol, state_dir=tmp_path, dry_run=True)
        assert out is not None
        by = {o.table: o for o in out}
        expected = _expired_names(conn, LE, "1 month")
        assert [a.partition for a in by[LE].actions] == expected and expected
        for a in by[LE].actions:
            assert (
                a.rows == count(conn, a.partition) and a.rows_exact and a.steps == ["dump", "detach", "drop"]
            )
        assert [a.partition for a in by[SPM].actions] == _expired_names(conn, SPM, "2 months")
        assert by[QPL].rows_removed == 13  # days 7.5 .. 19.5
        assert fingerprint(conn) == catalog
        assert {t: rows_digest(conn, t) for t in (LE, SPM, QPL)} == digests
        assert count(conn, "capacity_planning_metrics") == 0
        assert not (tmp_path / "dumps").exists() or not any((tmp_path / "dumps").iterdir())


# ------------------------------------------------------------------ drop / keep / dump


@pytest.mark.calendar
def test_drop_mode_detaches_and_drops_only_expired(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy({LE: {"retention": "1 month", "premake": 1, "archive": "drop"}, SPM: {"enabled": False}},
                  tmp_path, plain=_only_plain(), exact_counts=True)  # fmt: skip
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        expired = _expired_names(conn, LE, "1 month")
        doomed = sum(count(conn, p) for p in expired)
        total = count(conn, LE)
        keep = [p for p in partitions_of(conn, LE) if p not in expired]
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert [a.partition for a in outcome.actions] == expired
        assert outcome.rows_removed == doomed > 0 and outcome.bytes_removed > 0
        assert count(conn, LE) == total - doomed
        assert partitions_of(conn, LE) == keep
        for p in expired:
            assert conn.execute("SELECT to_regclass(%s)", (p,)).fetchone()[0] is None
        # never the current or a future partition
        now = clock.db_now(conn)
        current = intervals.partition_name(LE, intervals.floor_to(now, "month"))
        assert current in keep
        assert count(conn, LE + "_default") == 0
        metric = conn.execute(
            "SELECT value FROM capacity_planning_metrics WHERE metric_name = 'retention_rows_removed' AND resource_name = %s",
            (LE,),
        ).fetchone()[0]
        assert metric == doomed
        (again,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert again.actions == [] and count(conn, LE) == total - doomed


def test_keep_mode_moves_partitions_into_archive_schema(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy({SPM: {"retention": "2 months", "premake": 1, "archive": "keep"}, LE: {"enabled": False}},
                  tmp_path, plain=_only_plain(), archive_schema="old stuff")  # fmt: skip
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn, SPM)
        expired = _expired_names(conn, SPM, "2 months")
        digests = {p: rows_digest(conn, p) for p in expired}
        total = count(conn, SPM)
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert [a.archived_to for a in outcome.actions] == [f"old stuff.{p}" for p in expired]
        assert outcome.rows_archived == sum(count(conn, p, schema="old stuff") for p in expired) > 0
        assert outcome.rows_removed == 0
        for p in expired:
            assert rows_digest(conn, p, schema="old stuff") == digests[p]
        assert count(conn, SPM) == total - outcome.rows_archived
        assert not set(expired) & set(partitions_of(conn, SPM))


def test_dump_mode_round_trips_and_verifies(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy({LE: {"retention": "2 months", "premake": 1, "archive": "dump"}, SPM: {"enabled": False}},
                  tmp_path, plain=_only_plain())  # fmt: skip
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type, source, payload) VALUES"
            f" ({OLDEST} + interval '1 day', 'tricky', E'tab\\there\\nnewline \\\\ back', '{{\"q\": \"\\\"\"}}'),"
            f" ({OLDEST} + interval '1 day', 'nulls', NULL, NULL)"
        )
        expired = _expired_names(conn, LE, "2 months")
        digests = {p: rows_digest(conn, p) for p in expired}
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert [a.partition for a in outcome.actions] == expired
        for action in outcome.actions:
            manifest_path = Path(action.archived_to)
            manifest = json.loads(manifest_path.read_text())
            assert manifest["rows"] == action.rows and manifest["partition"] == action.partition
            assert conn.execute("SELECT to_regclass(%s)", (action.partition,)).fetchone()[0] is None
            # restore into a fresh table shaped like the parent and compare every row
            restored = "restored_" + action.partition
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE learning_events)").format(sql.Identifier(restored)))
            assert restore.restore_dump(conn, manifest_path, schema="public", table=restored) == action.rows
            assert rows_digest(conn, restored) == digests[action.partition]
        assert outcome.rows_archived == outcome.rows_removed == sum(a.rows for a in outcome.actions) > 0
        # the rows that need escaping were in an expired partition: dumped, restored, gone here
        tricky = "SELECT count(*) FROM learning_events WHERE event_type IN ('tricky', 'nulls')"
        assert conn.execute(tricky).fetchone()[0] == 0


def test_dump_verification_catches_a_damaged_file(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy({LE: {"retention": "2 months", "premake": 1, "archive": "dump"}}, tmp_path)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        target = catalog.resolve_targets(conn, {LE: pol.partitions.tables[LE]})[0]
        exp = expired.expired_partitions(conn, target, now=clock.db_now(conn), exact=True)[0]
        manifest_path = archive.dump_partition(
            conn, target, exp, dump_dir=tmp_path / "d", retry=pol.retention, log=retention.get_logger()
        )
        manifest = json.loads(manifest_path.read_text())
        data = manifest_path.parent / manifest["file"]
        with gzip.open(data, "rb") as fh:
            lines = fh.readlines()
        with gzip.open(data, "wb") as fh:
            fh.writelines(lines[:-1])  # one row lost
        with pytest.raises(RowCountMismatch, match="checksum"):
            archive.verify_dump(manifest_path)
        manifest["sha256"] = archive._sha256(data)
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(RowCountMismatch, match=f"holds {len(lines) - 1} rows"):
            archive.verify_dump(manifest_path)
        assert exp.name in partitions_of(conn, LE)


def test_dump_mode_reattaches_when_rows_change_after_the_dump(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy({LE: {"retention": "2 months", "premake": 1, "archive": "dump"}}, tmp_path)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        target = catalog.resolve_targets(conn, {LE: pol.partitions.tables[LE]})[0]
        exp = expired.expired_partitions(conn, target, now=clock.db_now(conn), exact=True)[0]
        log = retention.get_logger()
        manifest_path = archive.dump_partition(
            conn, target, exp, dump_dir=tmp_path / "d", retry=pol.retention, log=log
        )
        conn.execute("INSERT INTO learning_events (occurred_at, event_type) VALUES (%s, 'late')", (exp.lo,))
        with pytest.raises(RowCountMismatch, match="re-attached, nothing dropped"):
            archive.drop_after_dump(conn, target, exp, manifest_path, retry=pol.retention, log=log)
        assert exp.name in partitions_of(conn, LE)
        # re-attached without the detach marker: no later run takes it for a half-done drop
        assert conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", (exp.name,)).fetchone() == (
            None,
        )
        assert count(conn, exp.name) == exp.rows + 1


@pytest.mark.calendar
def test_midnight_never_drops_the_current_partition(
    calendar_clock: CalendarClock, migrated_db: Database, tmp_path: Path
) -> None:
    """Daily partitions, 1 day kept: a run a second before midnight and one just after drop exactly
    the partitions wholly older than a day before their own reading of now, never the day the run
    started in (nor, after midnight, the one it ended), while a writer inserts across midnight."""
    name = "by_day"
    pol = _policy({name: {"interval": "day", "premake": 1, "retention": "1 day", "archive": "drop"},
                   LE: {"enabled": False}, SPM: {"enabled": False}}, tmp_path, plain=_only_plain())  # fmt: skip
    midnight = intervals.floor_to(calendar_clock.instant, "day") + timedelta(days=1)
    day = timedelta(days=1)
    calendar_clock.move_to(midnight - timedelta(seconds=1.5))
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        create_weird_table(conn, name)
        for back in range(-1, 4):  # yesterday-2 .. tomorrow (the last day before midnight is "today")
            lo = midnight - (back + 1) * day
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(intervals.partition_name(name, lo)),
                    sql.Identifier(name),
                    sql.Literal(lo),
                    sql.Literal(lo + day),
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {} (ts, note) VALUES (%s, 'old')").format(sql.Identifier(name)),
                (lo + timedelta(hours=12),),
            )
        stop = threading.Event()

        def write() -> None:
            with psycopg.connect(migrated_db.dsn, autocommit=True) as w:
                while not stop.is_set():
                    w.execute(sql.SQL("INSERT INTO {} (ts, note) VALUES (clock_timestamp(), 'w')").format(
                        sql.Identifier(name)))  # fmt: skip
                    stop.wait(0.01)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            started = clock.db_now(conn)
            (before,) = retention.expire_all(conn, pol, state_dir=tmp_path)
            while clock.db_now(conn) < midnight + timedelta(seconds=0.5):
                time.sleep(0.05)
            after_started = clock.db_now(conn)
            (after,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        finally:
            stop.set()
            writer.join()
        assert started < midnight <= after_started  # the runs really were on both sides
        today = intervals.partition_name(name, midnight - day)
        yesterday = intervals.partition_name(name, midnight - 2 * day)
        assert [a.partition for a in before.actions] == [
            intervals.partition_name(name, midnight - 4 * day),
            intervals.partition_name(name, midnight - 3 * day),
        ]
        assert [a.partition for a in after.actions] == [yesterday]
        left = partitions_of(conn, name)
        assert today in left and intervals.partition_name(name, midnight) in left
        assert count(conn, name + "_default") == 0  # the writer's rows all had their day's partition


# ------------------------------------------------------------------ locks


def test_lock_held_on_parent_fails_cleanly(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy({LE: {"retention": "1 month", "premake": 1, "archive": "drop"}, SPM: {"enabled": False}},
                  tmp_path, plain=_only_plain(), attempts=2)  # fmt: skip
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        before = partitions_of(conn, LE)
        total = count(conn, LE)
        target = catalog.resolve_targets(conn, {LE: pol.partitions.tables[LE]})[0]
        # ACCESS SHARE (a long reader) blocks DETACH: the drop must wait at most lock_timeout per try.
        with (
            lock_held(migrated_db.dsn, LE, mode="ACCESS SHARE"),
            capture_logs() as logs,
            pytest.raises(LockRetriesExhausted, match="gave up after 2 tries"),
        ):
            partitioned.expire_partitions(
                conn,
                target,
                pol.retention,
                now=clock.db_now(conn),
                dump_dir=tmp_path,
                log=retention.get_logger(),
            )
        assert [e["attempt"] for e in logs if e["event"] == "lock busy, will retry"] == [1]
        assert partitions_of(conn, LE) == before and count(conn, LE) == total
        with lock_held(migrated_db.dsn, LE, mode="ACCESS SHARE", release_after=0.5):
            slow = pol.retention.model_copy(update={"attempts": 60})
            outcome = partitioned.expire_partitions(
                conn, target, slow, now=clock.db_now(conn), dump_dir=tmp_path, log=retention.get_logger()
            )
        assert outcome.actions and not set(a.partition for a in outcome.actions) & set(
            partitions_of(conn, LE)
        )


# ------------------------------------------------------------------ plain tables


def test_plain_tables_batched_delete_with_exact_counts(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy({LE: {"enabled": False}, SPM: {"enabled": False}}, tmp_path,
                  plain=_only_plain(query_performance_logs={"column": "logged_at", "retention": "30 days", "batch_size": 7}))  # fmt: skip
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms)"
            " SELECT now() - (g + 0.5) * interval '1 hour', 'q', 1 FROM generate_series(0, 24 * 40 - 1) g"
        )
        young = conn.execute(
            "SELECT count(*) FROM query_performance_logs WHERE logged_at >= now() - interval '30 days'"
        ).fetchone()[0]
        old = count(conn, QPL) - young
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert outcome.rows_removed == old and outcome.rows_remaining == 0 and outcome.complete
        assert count(conn, QPL) == young
        assert outcome.bytes_removed > 0


def test_plain_delete_stops_at_the_time_budget(migrated_db: Database) -> None:
    pol = _policy(
        {},
        plain=_only_plain(
            query_performance_logs={"column": "logged_at", "retention": "1 day", "batch_size": 5}
        ),
    )
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms)"
            " SELECT now() - interval '2 days', 'q', 1 FROM generate_series(1, 20)"
        )
        (target,) = plain.resolve_plain(conn, pol.retention.enabled_plain())
        out = plain.purge_plain(
            conn, target, now=clock.db_now(conn), deadline=time.monotonic() - 1, retry=pol.retention
        )
        assert out.rows_removed == 0 and out.rows_remaining == 20 and not out.complete
        assert count(conn, QPL) == 20


def test_plain_batch_mismatch_rolls_back(migrated_db: Database, tmp_path: Path) -> None:
    pol = _policy(
        {},
        plain=_only_plain(
            query_performance_logs={"column": "logged_at", "retention": "1 day", "batch_size": 100}
        ),
    )
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms)"
            " SELECT now() - interval '2 days', CASE WHEN g % 3 = 0 THEN 'keep' ELSE 'q' END, 1 FROM generate_series(1, 30) g"
        )
        conn.execute(
            "CREATE FUNCTION refuse_keep() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF OLD.query_fingerprint = 'keep' THEN RETURN NULL; END IF; RETURN OLD; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON query_performance_logs FOR EACH ROW EXECUTE FUNCTION refuse_keep()"
        )
        with pytest.raises(RowCountMismatch, match="rolled back"):
            retention.expire_all(conn, pol, state_dir=tmp_path)
        assert count(conn, QPL) == 30


def test_plain_policy_errors_are_config_errors(migrated_db: Database, tmp_path: Path) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        for plain, message in [
            ({"nope": {"column": "ts", "retention": "1 day"}}, "does not exist"),
            ({"ml_models": {"column": "no_col", "retention": "1 day"}}, "has no column no_col"),
            ({"ml_models": {"column": "name", "retention": "1 day"}}, "not a date/time"),
            ({LE: {"column": "occurred_at", "retention": "1 day"}}, "not a plain table"),
        ]:
            with pytest.raises(ConfigError, match=message):
                retention.expire_all(conn, _policy({}, plain=_only_plain(**plain)), state_dir=tmp_path)
    with pytest.raises(Exception, match="batch_size"):
        RetentionPolicy.model_validate(
            {"plain": {"x": {"column": "t", "retention": "1 day", "batch_size": 0}}}
        )


# ------------------------------------------------------------------ hostile names


def test_hostile_names_in_drop_and_dump(migrated_db: Database, tmp_path: Path) -> None:
    name = WEIRD + "/x"
    pol = _policy({name: {"interval": "week", "premake": 1, "retention": "2 weeks", "archive": "dump"},
                   LE: {"enabled": False}, SPM: {"enabled": False}}, tmp_path, plain=_only_plain())  # fmt: skip
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        create_weird_table(conn, name)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (ts, note) SELECT now() - g * interval '1 day', 'n; DROP TABLE x' FROM generate_series(0, 34) g"
            ).format(sql.Identifier(name))
        )
        # rows older than the retention would stay in DEFAULT: partition them all first
        partitions.maintain_all(conn, policy({name: {"interval": "week", "premake": 1, "retention": "8 weeks"},
                                              LE: {"enabled": False}, SPM: {"enabled": False}}))  # fmt: skip
        assert count(conn, name + "_default") == 0
        total = count(conn, name)
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert outcome.actions and count(conn, name) == total - outcome.rows_removed
        files = list((tmp_path / "dumps").iterdir())
        assert files and all(f.parent == tmp_path / "dumps" for f in files)
        assert all("%2F" in f.name and "%22" in f.name for f in files)


# ------------------------------------------------------------------ Prefect flow


@pytest.mark.usefixtures("prefect_api")
def test_retention_flow_ledger_and_metrics(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pgtender.toml"
    config.write_text(
        '[partitions.tables.learning_events]\nretention = "1 month"\npremake = 1\narchive = "drop"\n'
        "[partitions.tables.system_performance_metrics]\nenabled = false\n"
        f'[retention]\nlock_timeout_ms = 500\ndump_dir = "{tmp_path / "dumps"}"\n'
        '[retention.plain.query_performance_logs]\nretention = "10 days"\n'
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    with migrated_db.connect() as conn:
        _load_months(conn)
        conn.execute(
            "INSERT INTO query_performance_logs (logged_at, query_fingerprint, execution_ms)"
            " SELECT now() - (g + 0.5) * interval '1 day', 'q', 1 FROM generate_series(0, 19) g"
        )
        expired = _expired_names(conn, LE, "1 month")
        total = count(conn, LE)
    dry = run_job("retention", dry_run=True)
    assert dry.verdict.kind is Kind.DONE, dry.verdict
    assert dry.results[0].result["partitions_expired"] == len(expired)
    assert dry.results[0].result["rows_remaining"] == 10
    with migrated_db.connect() as conn:
        assert count(conn, LE) == total
    state = flow_run("retention")
    assert state.is_completed() and verdict_of(state).kind is Kind.DONE
    result = state.result()
    assert result["partitions_expired"] == len(expired) and result["rows_removed"] >= 10
    with migrated_db.connect() as conn:
        rows = conn.execute(
            "SELECT status, counts, flow_run_id FROM pgtender_operations WHERE job = 'retention' ORDER BY started_at"
        ).fetchall()
        assert [r[0] for r in rows] == ["completed", "completed"]
        assert rows[0][1]["dry_run"] is True and rows[1][1]["partitions_expired"] == len(expired)
        names = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT metric_name FROM capacity_planning_metrics WHERE flow_run_id = %s",
                (rows[1][2],),
            ).fetchall()
        }
        assert names == {
            "retention_rows_removed",
            "retention_bytes_removed",
            "retention_rows_archived",
            "retention_bytes_archived",
        }
        assert count(conn, QPL) == 10
