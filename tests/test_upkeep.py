"""The upkeep job against a real PostgreSQL: a partitioned parent without statistics gets them, an
invalid index is rebuilt valid, a bloated index is rebuilt smaller, each beside a writer that is
never held longer than lock_timeout; unused and duplicate indexes are reported, never dropped;
autovacuum falling behind pages; a closed window defers rebuilds; a dry run changes nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql
from structlog.testing import capture_logs

from flows.core import db
from flows.core.policy.upkeep import UpkeepPolicy
from flows.upkeep import rebuild, statistics, summary, upkeep_pass
from flows.upkeep.scope import resolve
from tests.conftest import Database
from tests.upkeep_fixtures import (
    LOCK_TIMEOUT_MS,
    SLACK_S,
    Writer,
    db_now,
    index_names,
    index_state,
    make_items,
    window_around,
)

# The window is built around the database's now: the tests of the window run at every instant of
# the calendar matrix (the window's arithmetic itself: tests/test_upkeep_window.py, in milliseconds).


def run_once(conn: Any, upkeep: Any, **options: Any) -> Any:
    """The upkeep pass in one call with ``upkeep`` as the policy's [upkeep] section."""
    from flows.core.policy.settings import Policy

    return upkeep_pass(conn, Policy(upkeep=upkeep), **options)


def policy_for(database: Database, *, open_now: bool = True, **thresholds: Any) -> UpkeepPolicy:
    values: dict[str, Any] = {"min_index_mb": 0.5, "unused_days": 30, **thresholds}
    return UpkeepPolicy(
        window=window_around(db_now(database), open_now=open_now),
        thresholds=values,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
        attempts=3,
        backoff_base_ms=50,
        backoff_max_ms=200,
    )


@pytest.fixture
def conn(migrated_db: Database) -> Iterator[psycopg.Connection[Any]]:
    with db.connect(migrated_db.dsn, autocommit=True) as c:
        yield c


def _fill_learning_events(database: Database, rows: int) -> None:
    """Rows over the current and previous month, 8 event types: the parent has no statistics yet."""
    with database.connect() as c:
        c.execute(
            "INSERT INTO learning_events (occurred_at, event_type, source)"
            " SELECT now() - (g %% 40) * interval '1 day', 'type_' || (g %% 8), 'src'"
            "   FROM generate_series(1, %s) g",
            (rows,),
        )
        for (name,) in c.execute(
            "SELECT relid::regclass::text FROM pg_partition_tree('learning_events') WHERE isleaf"
        ).fetchall():
            c.execute(f"ANALYZE {name}")  # the partitions as autovacuum leaves them: analyzed


def _parent_stats(database: Database, table: str = "learning_events") -> tuple[int, float]:
    with database.connect() as c:
        stats = c.execute(
            "SELECT count(*) FROM pg_stats WHERE tablename = %s AND inherited", (table,)
        ).fetchone()[0]
        reltuples = c.execute("SELECT reltuples FROM pg_class WHERE relname = %s", (table,)).fetchone()[0]
    return int(stats), float(reltuples)


def _upkeep_rows(database: Database) -> int:
    return int(
        database.scalar(
            "SELECT (SELECT count(*) FROM data_quality_checks WHERE suite = 'upkeep')"
            " + (SELECT count(*) FROM capacity_planning_metrics WHERE metric_name LIKE 'upkeep.%')"
            " + (SELECT count(*) FROM pgtender_alert_state)"
        )
    )


# ---------------------------------------------------------------- statistics


def test_a_parent_without_statistics_gets_them_beside_a_writer(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    _fill_learning_events(migrated_db, 20_000)
    assert _parent_stats(migrated_db) == (0, -1.0)
    policy = policy_for(migrated_db)
    with (
        capture_logs(),
        Writer(
            migrated_db,
            "learning_events",
            "INSERT INTO {} (occurred_at, event_type) VALUES (now(), 'w' || %s)",
        ) as writer,
    ):
        out = run_once(conn, policy)
    writer.assert_never_stalled()
    assert {a.parent: a.reason for a in out.analyzed} == {
        "learning_events": "no statistics",
        "system_performance_metrics": "no statistics",  # empty, never analyzed
    }
    stats, reltuples = _parent_stats(migrated_db)
    assert stats > 0 and reltuples >= 20_000
    marks = migrated_db.scalar(
        "SELECT count(*) FROM capacity_planning_metrics WHERE metric_name = 'upkeep.parent_analyzed'"
    )
    assert marks == 2

    # nothing changed since: nothing is due
    again = run_once(conn, policy)
    assert again.survey.due == [] and again.analyzed == []


def test_partitions_attached_or_rows_changed_make_a_parent_due(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    _fill_learning_events(migrated_db, 5_000)
    policy = policy_for(migrated_db, analyze_change_fraction=0.5)
    with capture_logs():
        run_once(conn, policy)
        scope = resolve(conn, policy)
        assert statistics.due(conn, scope, 0.5)[1] == []

        # a partition attached (what the partitions job does)
        conn.execute("CREATE TABLE le_extra (LIKE learning_events INCLUDING ALL)")
        conn.execute(
            "ALTER TABLE learning_events ATTACH PARTITION le_extra"
            " FOR VALUES FROM ('2090-01-01') TO ('2090-02-01')"
        )
        (item,) = statistics.due(conn, resolve(conn, policy), 0.5)[1]
        assert item.parent.name == "learning_events" and "attached or detached" in item.reason
        run_once(conn, policy)
        assert statistics.due(conn, resolve(conn, policy), 0.5)[1] == []

        # rows changed in the partitions: a few do not count, past the threshold they do
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type) SELECT now(), 'x' FROM generate_series(1, 100)"
        )
        conn.execute("SELECT pg_stat_force_next_flush()")
        _wait_for_stats(conn)
        assert statistics.due(conn, resolve(conn, policy), 0.5)[1] == []
        migrated_db.scalar(
            "DELETE FROM learning_events WHERE event_type IN ('type_1', 'type_2', 'type_3', 'type_4', 'type_5')"
            " RETURNING 1"
        )
        _wait_for_stats(conn)
        (item,) = statistics.due(conn, resolve(conn, policy), 0.5)[1]
        assert "rows changed in its partitions" in item.reason
        # detaching one: due again whatever the rows
        run_once(conn, policy)
        conn.execute("ALTER TABLE learning_events DETACH PARTITION le_extra")
        (item,) = statistics.due(conn, resolve(conn, policy), 0.5)[1]
        assert "attached or detached" in item.reason


def _wait_for_stats(conn: psycopg.Connection[Any]) -> None:
    """Statistics of other sessions reach the shared counters within about a second (PG 15+)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    time.sleep(1.2)
    conn.execute("SELECT pg_stat_clear_snapshot()")


def test_stale_and_missing_statistics_are_listed(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    make_items(migrated_db, "upkeep_never", 2_000)
    make_items(migrated_db, "upkeep_stale", 2_000)
    with migrated_db.connect() as c:
        c.execute("ANALYZE upkeep_stale")
        c.execute("UPDATE upkeep_stale SET v = v + 1")
    _wait_for_stats(conn)
    with capture_logs():
        out = run_once(conn, policy_for(migrated_db))
    listed = {s.table: s.reason for s in out.survey.stale}
    assert listed.get("upkeep_never") == "missing" and listed.get("upkeep_stale") == "stale"
    rows = dict(
        migrated_db.connect()
        .execute(
            "SELECT target, status FROM data_quality_checks WHERE check_name = 'upkeep.stale_statistics' AND is_current"
        )
        .fetchall()
    )
    assert rows["upkeep_never"] == "warning" and rows["upkeep_stale"] == "warning"


# ---------------------------------------------------------------- invalid indexes


def _invalid_unique_index(database: Database, table: str, index: str) -> None:
    """What a failed migration leaves: CREATE UNIQUE INDEX CONCURRENTLY over duplicate values."""
    make_items(database, table, 30_000, distinct=10_000)
    with database.connect() as c, pytest.raises(psycopg.errors.UniqueViolation):
        c.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {index} ON {table} (v)")
    assert index_state(database, index) == (False, index_state(database, index)[1])  # type: ignore[index]


def test_an_invalid_index_is_rebuilt_valid_beside_a_writer(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    _invalid_unique_index(migrated_db, "upkeep_items", "upkeep_items_v_key")
    with migrated_db.connect() as c:  # someone removes the duplicates; the index stays invalid
        c.execute("DELETE FROM upkeep_items WHERE id > 10000")
    _vacuum(migrated_db, "upkeep_items")
    with capture_logs(), Writer(migrated_db, "upkeep_items") as writer:
        out = run_once(conn, policy_for(migrated_db))
    writer.assert_never_stalled()
    (done,) = [r for r in out.rebuilt if r.index == "upkeep_items_v_key"]
    assert done.status == "rebuilt" and done.kind == "invalid"
    assert index_state(migrated_db, "upkeep_items_v_key")[0] is True  # type: ignore[index]
    assert index_names(migrated_db, "upkeep_items") == ["upkeep_items_pkey", "upkeep_items_v_key"]
    assert summary.findings(out) == []
    status = migrated_db.scalar(
        "SELECT status FROM data_quality_checks WHERE check_name = 'upkeep.invalid_index' AND is_current"
    )
    assert status == "passed"


def test_an_invalid_index_that_cannot_be_rebuilt_is_a_finding_and_leaves_no_copy(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    _invalid_unique_index(migrated_db, "upkeep_items", "upkeep_items_v_key")  # duplicates stay
    with capture_logs():
        out = run_once(conn, policy_for(migrated_db))
    (done,) = out.rebuilt
    assert done.status == "failed" and "UniqueViolation" in (done.error or "") and done.attempts == 1
    assert index_names(migrated_db, "upkeep_items") == ["upkeep_items_pkey", "upkeep_items_v_key"]
    assert index_state(migrated_db, "upkeep_items_v_key")[0] is False  # type: ignore[index]
    (finding,) = summary.findings(out)
    assert finding.startswith("invalid index upkeep_items_v_key on upkeep_items: UniqueViolation")


def test_a_rebuild_waiting_on_an_old_transaction_gives_up_and_its_copy_is_dropped_later(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    """REINDEX CONCURRENTLY waits for transactions older than it: under lock_timeout it gives up,
    its half-built copy (<index>_ccnew) cannot be dropped while that transaction lasts either, and
    the next run drops it. The index stays valid and the writer writes throughout."""
    make_items(migrated_db, "upkeep_items", 20_000)
    with migrated_db.connect() as c:
        c.execute("CREATE INDEX upkeep_items_v_idx ON upkeep_items (v)")
    policy = policy_for(migrated_db).model_copy(update={"attempts": 2})
    with capture_logs(), Writer(migrated_db, "upkeep_items") as writer, migrated_db.connect() as holder:
        holder.execute("BEGIN")
        holder.execute("INSERT INTO upkeep_items (v) VALUES (-1)")
        result = _rebuild(conn, "upkeep_items_v_idx", policy)
        holder.execute("COMMIT")
    writer.assert_never_stalled()
    assert result.status == "failed" and result.attempts == 2 and "LockNotAvailable" in (result.error or "")
    assert result.leftovers and all(n.startswith("upkeep_items_v_idx_ccnew") for n in result.leftovers)
    assert index_state(migrated_db, "upkeep_items_v_idx")[0] is True  # type: ignore[index]
    with capture_logs():
        out = run_once(conn, policy_for(migrated_db))
    assert sorted(r.index for r in out.rebuilt if r.status == "dropped") == sorted(result.leftovers)
    assert index_names(migrated_db, "upkeep_items") == ["upkeep_items_pkey", "upkeep_items_v_idx"]


def _rebuild(
    c: psycopg.Connection[Any], index: str, policy: UpkeepPolicy, deadline: Any = None
) -> rebuild.Rebuilt:
    """upkeep's rebuild of one bloated index of ``upkeep_items``."""
    return rebuild.rebuild(
        c, index, "upkeep_items", "bloated", schema="public", policy=policy, deadline=deadline, log=_log()
    )


def _log() -> Any:
    from flows.core.logs import get_logger

    return get_logger(job="upkeep")


def test_the_writer_watch_catches_a_statement_that_blocks_writers(migrated_db: Database) -> None:
    """The instrument of the tests above: a lock that does hold inserts back (SHARE, as a plain
    CREATE INDEX takes) for longer than lock_timeout + slack fails ``assert_never_stalled``."""
    make_items(migrated_db, "upkeep_items", 1_000)
    hold_s = LOCK_TIMEOUT_MS / 1000.0 + SLACK_S + 1.5
    with Writer(migrated_db, "upkeep_items") as writer, migrated_db.connect() as blocker:
        time.sleep(0.2)
        with blocker.transaction():
            blocker.execute("LOCK TABLE upkeep_items IN SHARE MODE")
            time.sleep(hold_s)
    assert writer.lock_wait_samples > 0
    with pytest.raises(AssertionError):
        writer.assert_never_stalled()


# ---------------------------------------------------------------- bloat


def _bloated(database: Database, table: str) -> str:
    make_items(database, table, 200_000)
    index = f"{table}_v_idx"
    with database.connect() as c:
        c.execute(f"CREATE INDEX {index} ON {table} (v)")
        c.execute(f"DELETE FROM {table} WHERE id % 10 <> 0")
    _vacuum(database, table)
    return index


def _vacuum(database: Database, table: str) -> None:
    """VACUUM ANALYZE once the statistics of the changes before it are in (a session's pending
    counts flushed after the VACUUM's own report would count its dead tuples again)."""
    with database.connect() as c:
        time.sleep(1.2)
        c.execute("SELECT pg_stat_clear_snapshot()")
        c.execute(f"VACUUM ANALYZE {table}")


def test_a_bloated_index_is_rebuilt_smaller_beside_a_writer(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    index = _bloated(migrated_db, "upkeep_items")
    before = index_state(migrated_db, index)[1]  # type: ignore[index]
    with capture_logs(), Writer(migrated_db, "upkeep_items") as writer:
        out = run_once(conn, policy_for(migrated_db, bloat_pct=40, min_index_mb=1))
    writer.assert_never_stalled()
    (estimate,) = [b for b in out.survey.bloat if b.index == index]
    assert estimate.source == "estimate" and estimate.bloat_pct is not None and estimate.bloat_pct > 80
    (done,) = [r for r in out.rebuilt if r.index == index]
    assert done.status == "rebuilt" and done.kind == "bloated" and done.bytes_before == before
    valid, after = index_state(migrated_db, index)  # type: ignore[misc]
    assert valid and after < before / 3 and done.bytes_after == after
    assert {r.index for r in out.rebuilt} == {index, "upkeep_items_pkey"}  # as bloated as the other
    with migrated_db.connect() as c:
        recorded = dict(
            c.execute(
                "SELECT metric_name, value FROM capacity_planning_metrics WHERE resource_name = %s"
                " AND metric_name IN ('upkeep.index_bytes_before', 'upkeep.index_bytes_after')",
                (index,),
            ).fetchall()
        )
    assert recorded == {"upkeep.index_bytes_before": before, "upkeep.index_bytes_after": after}


def test_pgstatindex_measures_when_pgstattuple_is_installed(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    if not migrated_db.scalar("SELECT count(*) FROM pg_available_extensions WHERE name = 'pgstattuple'"):
        pytest.skip("pgstattuple is not available on this server (the embedded one has no contrib)")
    index = _bloated(migrated_db, "upkeep_items")
    conn.execute("CREATE EXTENSION pgstattuple")
    with capture_logs():
        out = run_once(conn, policy_for(migrated_db, bloat_pct=40, min_index_mb=1), dry_run=True)
    (measured,) = [b for b in out.survey.bloat if b.index == index]
    assert measured.source == "pgstatindex" and measured.bloat_pct is not None and measured.bloat_pct > 80


@pytest.mark.calendar
def test_a_closed_window_defers_rebuilds_and_still_analyzes(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    index = _bloated(migrated_db, "upkeep_items")
    _fill_learning_events(migrated_db, 1_000)
    before = index_state(migrated_db, index)
    with capture_logs():
        out = run_once(conn, policy_for(migrated_db, open_now=False, bloat_pct=40, min_index_mb=1))
    assert not out.survey.window_open
    assert {r.index: r.status for r in out.rebuilt} == {index: "deferred", "upkeep_items_pkey": "deferred"}
    assert index_state(migrated_db, index) == before
    assert _parent_stats(migrated_db)[0] > 0
    assert summary.findings(out) == []  # bloat waits for the window: nothing to page
    status = migrated_db.scalar(
        "SELECT status FROM data_quality_checks WHERE check_name = 'upkeep.bloated_index' AND target = %s"
        " AND is_current",
        (index,),
    )
    assert status == "warning"


# ---------------------------------------------------------------- reported, never dropped


def test_unused_and_duplicate_indexes_are_reported_and_never_dropped(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    make_items(migrated_db, "upkeep_items", 1_000)
    with migrated_db.connect() as c:
        c.execute("CREATE INDEX upkeep_items_v_idx ON upkeep_items (v)")
        c.execute("CREATE INDEX upkeep_items_v_copy ON upkeep_items (v)")
        c.execute("CREATE INDEX upkeep_items_id_idx ON upkeep_items (id)")  # duplicates the primary key
        c.execute(
            "CREATE UNIQUE INDEX upkeep_items_pad_key ON upkeep_items (pad, id)"
        )  # unique: never unused
        c.execute("SET enable_seqscan = off")
        c.execute("SELECT count(*) FROM upkeep_items WHERE v = 3")  # upkeep_items_v_idx or _copy: scanned
    _wait_for_stats(conn)
    policy = policy_for(migrated_db, unused_days=30)
    with capture_logs():
        first = run_once(conn, policy)
    unused = {u.index: u for u in first.survey.unused}
    assert "upkeep_items_pkey" not in unused and "upkeep_items_pad_key" not in unused
    assert "upkeep_items_id_idx" in unused and not unused["upkeep_items_id_idx"].unused  # watched, not yet
    groups = {g.keep: g.redundant for g in first.survey.duplicates if g.table == "upkeep_items"}
    assert groups == {
        "upkeep_items_pkey": ["upkeep_items_id_idx"],
        "upkeep_items_v_copy": ["upkeep_items_v_idx"],
    }

    # 40 days later as far as the statistics and upkeep's own record go: unused now
    with migrated_db.connect() as c:
        c.execute(
            "UPDATE data_quality_checks SET observed_value = jsonb_set(observed_value, '{first_seen}',"
            " to_jsonb((now() - interval '40 days')::text)) WHERE check_name = 'upkeep.unused_index'"
        )
        c.execute(
            "INSERT INTO pgtender_operations (job, status, started_at, finished_at)"
            " VALUES ('health', 'completed', now() - interval '41 days', now() - interval '41 days')"
        )
    with capture_logs():
        later = run_once(conn, policy)
    assert {u.index for u in later.survey.unused if u.unused} >= {"upkeep_items_id_idx"}
    rows = dict(
        migrated_db.connect()
        .execute(
            "SELECT target, status FROM data_quality_checks WHERE is_current"
            " AND check_name IN ('upkeep.unused_index', 'upkeep.duplicate_index') AND target LIKE 'upkeep_items%'"
        )
        .fetchall()
    )
    assert rows["upkeep_items_id_idx"] == "warning"
    assert index_names(migrated_db, "upkeep_items") == [
        "upkeep_items_id_idx",
        "upkeep_items_pad_key",
        "upkeep_items_pkey",
        "upkeep_items_v_copy",
        "upkeep_items_v_idx",
    ]
    assert summary.findings(later) == []  # reported, not a problem of the run


# ---------------------------------------------------------------- vacuum


def test_autovacuum_behind_is_found_and_clears_after_a_vacuum(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    make_items(migrated_db, "upkeep_items", 20_000)  # autovacuum is off for it
    with migrated_db.connect() as c:
        c.execute("UPDATE upkeep_items SET v = v + 1")
    _wait_for_stats(conn)
    with capture_logs():
        out = run_once(conn, policy_for(migrated_db))
    (behind,) = [v for v in out.survey.vacuum if v.table == "upkeep_items"]
    assert behind.behind and behind.dead_ratio == pytest.approx(0.5, abs=0.05)
    assert any(f.startswith("autovacuum is behind on upkeep_items") for f in summary.findings(out))
    with migrated_db.connect() as c:
        c.execute("VACUUM upkeep_items")
    _wait_for_stats(conn)
    with capture_logs():
        out = run_once(conn, policy_for(migrated_db))
    assert not [v for v in out.survey.vacuum if v.behind]


# ---------------------------------------------------------------- the rebuild's WAL


def _accepts_wal_compression(c: psycopg.Connection[Any], method: str) -> bool:
    """Whether the server was built with ``method`` (the superuser's session: privilege is no question)."""
    try:
        c.execute("SELECT set_config('wal_compression', %s, false)", (method,))
    except psycopg.errors.InvalidParameterValue:
        return False
    c.execute("RESET wal_compression")
    return True


def test_a_rebuild_compresses_its_wal_when_the_role_may_and_rebuilds_all_the_same_when_not(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    """wal_compression is a superuser's setting: the test server's superuser rebuilds with zstd (the
    default; pglz where the server was built without zstd, saying so: the embedded server's test
    covers that) or any method asked for, and its session is back to the server's setting
    afterwards; "server" leaves it alone; a role that owns the table but may not SET it rebuilds all
    the same, with the server's setting, and says so once; once granted SET on the parameter (the
    runbook's remedy) it compresses too."""
    make_items(migrated_db, "upkeep_items", 5_000)
    default = conn.execute("SHOW wal_compression").fetchone()[0]  # type: ignore[index]
    zstd = _accepts_wal_compression(conn, "zstd")
    method = "zstd" if zstd else "pglz"
    policy = policy_for(migrated_db)
    assert policy.rebuild_wal_compression == "zstd"
    with capture_logs() as logs:
        done = _rebuild(conn, "upkeep_items_pkey", policy)
        asked = _rebuild(
            conn, "upkeep_items_pkey", policy.model_copy(update={"rebuild_wal_compression": "pglz"})
        )
        left = _rebuild(
            conn, "upkeep_items_pkey", policy.model_copy(update={"rebuild_wal_compression": "server"})
        )
    assert (done.status, done.wal_compression) == ("rebuilt", method), done.error
    assert (asked.status, asked.wal_compression) == ("rebuilt", "pglz"), asked.error
    assert (left.status, left.wal_compression) == ("rebuilt", None), left.error
    said = [(e["event"], e["method"]) for e in logs if e["event"].startswith("rebuild WAL compression")]
    assert said == ([] if zstd else [("rebuild WAL compression falls back to pglz", "zstd")])
    assert conn.execute("SHOW wal_compression").fetchone()[0] == default  # type: ignore[index]
    role = f"pgtender_owner_{uuid.uuid4().hex[:8]}"
    grant = sql.SQL("{} SET ON PARAMETER wal_compression {} {}")  # PostgreSQL 15+: cluster-wide
    with migrated_db.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("ALTER TABLE upkeep_items OWNER TO {}").format(sql.Identifier(role)))
    try:
        with (
            psycopg.connect(conninfo.make_conninfo(migrated_db.dsn, user=role), autocommit=True) as own,
            capture_logs() as logs,
        ):
            plain = _rebuild(own, "upkeep_items_pkey", policy)
            with migrated_db.connect() as admin:  # the runbook's remedy
                admin.execute(grant.format(sql.SQL("GRANT"), sql.SQL("TO"), sql.Identifier(role)))
            granted = _rebuild(own, "upkeep_items_pkey", policy)
        assert (plain.status, plain.wal_compression) == ("rebuilt", None), plain.error
        said = [e for e in logs if e["event"] == "rebuild WAL compression left to the server"]
        assert [(e["method"], e["reason"]) for e in said] == [("zstd", "InsufficientPrivilege")]
        assert (granted.status, granted.wal_compression) == ("rebuilt", method), granted.error
    finally:
        with migrated_db.connect() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE usename = %s", (role,)
            )
            admin.execute(grant.format(sql.SQL("REVOKE"), sql.SQL("FROM"), sql.Identifier(role)))
            admin.execute("ALTER TABLE upkeep_items OWNER TO CURRENT_USER")
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# ---------------------------------------------------------------- dry run


def test_a_dry_run_changes_nothing(migrated_db: Database, conn: psycopg.Connection[Any]) -> None:
    _fill_learning_events(migrated_db, 2_000)
    index = _bloated(migrated_db, "upkeep_items")
    _invalid_unique_index(migrated_db, "upkeep_other", "upkeep_other_v_key")
    before = (index_state(migrated_db, index), index_state(migrated_db, "upkeep_other_v_key"))
    for policy, flag in (
        (policy_for(migrated_db, min_index_mb=1), True),
        (policy_for(migrated_db, min_index_mb=1).model_copy(update={"dry_run": True}), False),
    ):
        with capture_logs():
            out = run_once(conn, policy, dry_run=flag)
        assert out.dry_run and out.analyzed == [] and out.rebuilt == []
        assert [d.parent.name for d in out.survey.due][:1] == ["learning_events"]
        assert {b.index for b in out.survey.bloated} >= {index}
    assert (index_state(migrated_db, index), index_state(migrated_db, "upkeep_other_v_key")) == before
    assert _parent_stats(migrated_db) == (0, -1.0)
    assert _upkeep_rows(migrated_db) == 0


@pytest.mark.calendar
def test_a_rebuild_is_cancelled_when_the_window_closes_and_not_started_after(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    """The statement timeout of a rebuild is what is left of the window: a REINDEX still waiting when
    the window closes is cancelled (here it waits on an old transaction, with a lock_timeout longer
    than the window); with less than a second left none starts."""
    make_items(migrated_db, "upkeep_items", 5_000)
    policy = policy_for(migrated_db).model_copy(update={"lock_timeout_ms": 60_000, "attempts": 1})
    with capture_logs(), migrated_db.connect() as holder:
        holder.execute("BEGIN")
        holder.execute("INSERT INTO upkeep_items (v) VALUES (-1)")
        closes = db_now(migrated_db) + timedelta(seconds=2)
        result = _rebuild(conn, "upkeep_items_pkey", policy, closes)
        holder.execute("ROLLBACK")
    assert result.status == "failed" and "QueryCanceled" in (result.error or ""), result.error
    assert "statement timeout" in (result.error or "")
    assert index_state(migrated_db, "upkeep_items_pkey")[0] is True  # type: ignore[index]
    with capture_logs():
        late = _rebuild(conn, "upkeep_items_pkey", policy, db_now(migrated_db) + timedelta(milliseconds=500))
    assert late.status == "deferred" and late.attempts == 0
    # the session's own settings are back
    assert conn.execute("SHOW lock_timeout").fetchone()[0] == "2s"


def test_upkeep_rows_do_not_count_in_the_health_quality_score(
    migrated_db: Database, conn: psycopg.Connection[Any]
) -> None:
    """Upkeep's rows share the quality suites' UTC-day windows: yesterday's failed vacuum row must
    not read as a failed quality check."""
    from flows.core.policy.settings import HealthPolicy
    from flows.health import run_probes

    make_items(migrated_db, "upkeep_items", 5_000)
    with migrated_db.connect() as c:
        c.execute("UPDATE upkeep_items SET v = v + 1")
    _wait_for_stats(conn)
    now = db_now(migrated_db)
    with capture_logs():
        run_once(conn, policy_for(migrated_db), now=now - timedelta(days=1))
    assert (
        migrated_db.scalar(
            "SELECT status FROM data_quality_checks WHERE check_name = 'upkeep.vacuum' AND window_end <= now()"
        )
        == "failed"
    )
    (score,) = run_probes(conn, HealthPolicy(), now=now, only=("quality_score",)).results
    assert score.status == "skipped", score
