"""Issue 12, items 2 and 3: a second run never fails on a lock, and the DEFAULT rescue commits one
month at a time. Every lock is held by a real second session; nothing waits on a timer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from flows import partitions
from flows.core import clock, db
from flows.core.ddl import RowCountMismatch
from flows.core.engine import Done, Kind, Run
from flows.core.partitioning import catalog, intervals
from tests.conftest import Database, flow_run, run_job, verdict_of
from tests.engine_fixtures import custom_run
from tests.partitions_fixtures import count, partitions_of, policy, rows_digest

LE = "learning_events"
ONLY_LE = {"system_performance_metrics": {"enabled": False}}


@contextmanager
def run_a_mid_attach(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """Another session in the state of run A during its ATTACH: the job's advisory lock, and
    ACCESS EXCLUSIVE on DEFAULT inside an open transaction."""
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('pgtender.job'), hashtext('partitions'))")
        holder.execute("LOCK TABLE learning_events_default IN ACCESS EXCLUSIVE MODE")
        try:
            yield holder
        finally:
            holder.rollback()


@contextmanager
def foreign_lock(dsn: str, table: str) -> Iterator[None]:
    """Some other session (not pgtender) holds ACCESS EXCLUSIVE on ``table``."""
    with psycopg.connect(dsn) as holder:
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
        try:
            yield
        finally:
            holder.rollback()


def _month(conn: psycopg.Connection[Any], offset: int) -> str:
    now = clock.db_now(conn)
    return intervals.partition_name(
        LE, intervals.add_intervals(intervals.floor_to(now, "month"), "month", offset)
    )


# ------------------------------------------------------------------ 12.2: a second run skips


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "pgtender.toml"
    path.write_text(text)
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))


def test_second_run_skips_while_run_a_holds_default(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(
        tmp_path,
        monkeypatch,
        "[database]\nlock_timeout_ms = 200\n[partitions.tables.learning_events]\npremake = 6\n",
    )
    with run_a_mid_attach(migrated_db.dsn), db.connect(migrated_db.dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '200ms'")
        before = partitions_of(conn, LE)
        for dry_run in (True, False):
            report = run_job("partitions", dry_run=dry_run)
            assert report.verdict.kind is Kind.SKIPPED, report.verdict
            assert "advisory lock" in report.verdict.line
        assert partitions_of(conn, LE) == before
        assert conn.execute("SELECT status FROM pgtender_operations WHERE job = 'partitions'").fetchall() == [
            ("skipped",),
            ("skipped",),
        ]


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("dry_run", [True, False])
def test_flow_second_run_skips_while_run_a_holds_default(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    """The flow validates the policy against the catalog before it takes the lock: that read must
    not wait on DEFAULT (it used to die with "canceling statement due to lock timeout", exit 3)."""
    _config(tmp_path, monkeypatch, "[database]\nlock_timeout_ms = 200\n[partitions]\nlock_timeout_ms = 200\n")
    with run_a_mid_attach(migrated_db.dsn):
        state = flow_run("partitions", dry_run=dry_run)
    assert state.is_completed()
    verdict = verdict_of(state)
    assert verdict.kind is Kind.SKIPPED and "advisory lock" in verdict.line
    with migrated_db.connect() as conn:
        (status,) = conn.execute("SELECT status FROM pgtender_operations WHERE job = 'partitions'").fetchone()
        assert status == "skipped"


def test_catalog_read_takes_no_lock_on_partitions(migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        pol = policy({LE: {}, **ONLY_LE})
        (target,) = catalog.resolve_targets(conn, pol.enabled_tables())
        current = _month(conn, 0)
        with foreign_lock(migrated_db.dsn, f"{LE}_default"), foreign_lock(migrated_db.dsn, current):
            conn.execute("SET lock_timeout = '100ms'")
            (again,) = catalog.resolve_targets(conn, pol.enabled_tables())
            children = catalog.read_children(conn, [target.oid])[target.oid]
        assert again == target
        assert {c.name for c in children} == set(partitions_of(conn, LE))
        assert [c.name for c in children if c.is_default] == [f"{LE}_default"]
        assert all(c.lo is not None for c in children if not c.is_default)


def test_dry_run_never_fails_on_a_locked_default(migrated_db: Database) -> None:
    pol = policy({LE: {"premake": 5}, **ONLY_LE}, attempts=1)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        before = partitions_of(conn, LE)
        with foreign_lock(migrated_db.dsn, f"{LE}_default"):
            results = partitions.maintain_all(conn, pol, dry_run=True)
        assert results is not None
        (le,) = results
        assert le.default_busy and le.dry_run
        assert le.created == [_month(conn, k) for k in (3, 4, 5)]  # the horizon is still planned
        assert partitions_of(conn, LE) == before


def test_a_run_does_not_wait_on_locked_existing_partitions(migrated_db: Database) -> None:
    """Somebody's long ACCESS EXCLUSIVE on an existing partition (not DEFAULT) does not stop a run."""
    pol = policy({LE: {"premake": 5}, **ONLY_LE}, attempts=1)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        with foreign_lock(migrated_db.dsn, _month(conn, 0)), foreign_lock(migrated_db.dsn, _month(conn, 1)):
            (le,) = partitions.maintain_all(conn, pol)
        assert le.created == [_month(conn, k) for k in (3, 4, 5)]


# ------------------------------------------------------------------ 12.3: rescue per month


def _park_months(conn: psycopg.Connection[Any], months: list[int], rows: int, tag: str = "old") -> None:
    for m in months:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type)"
            " SELECT date_trunc('month', now() - make_interval(months => %s), 'UTC') + g * interval '1 minute', %s"
            " FROM generate_series(1, %s) g",
            (m, tag, rows),
        )


def test_rescue_commits_each_month_and_a_failure_midway_keeps_earlier_months(migrated_db: Database) -> None:
    pol = policy({LE: {"retention": "none"}, **ONLY_LE})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _park_months(conn, [7, 5], 30)  # oldest first: month -7 is rescued before month -6
        _park_months(conn, [6], 20, tag="keep")
        conn.execute(  # month -6 fails its count check: one 'keep' row refuses to leave DEFAULT
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF OLD.event_type = 'keep' AND OLD.occurred_at = (SELECT max(occurred_at) FROM learning_events_default"
            " WHERE event_type = 'keep') THEN RETURN NULL; END IF; RETURN OLD; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON learning_events_default"
            " FOR EACH ROW EXECUTE FUNCTION refuse_one()"
        )
        total, digest = count(conn, LE), rows_digest(conn, LE)
        with pytest.raises(RowCountMismatch, match=r"into learning_events_p\d{8} \(inserted\)"):
            partitions.maintain_all(conn, pol)
        first, failed, rest = _month(conn, -7), _month(conn, -6), _month(conn, -5)
        assert count(conn, first) == 30  # committed before the failure
        assert conn.execute("SELECT to_regclass(%s)", (failed,)).fetchone()[0] is None
        assert conn.execute("SELECT to_regclass(%s)", (rest,)).fetchone()[0] is None
        assert count(conn, f"{LE}_default") == 20 + 30  # the failed month and the one after it
        assert _month(conn, 3) in partitions_of(conn, LE)  # the horizon went on regardless
        assert count(conn, LE) == total and rows_digest(conn, LE) == digest
        assert (
            conn.execute(  # no helper constraint left behind
                "SELECT count(*) FROM pg_constraint WHERE conname = 'pgtender_attach_bound'"
            ).fetchone()[0]
            == 0
        )

        conn.execute("DROP TRIGGER refuse ON learning_events_default")
        (le,) = partitions.maintain_all(conn, pol)
        assert sorted(le.created) == [failed, rest] and le.rows_moved == 50
        assert count(conn, f"{LE}_default") == 0
        assert count(conn, LE) == total and rows_digest(conn, LE) == digest


def test_each_rescued_month_is_its_own_transaction(migrated_db: Database) -> None:
    """Each month's partition and rows were committed by a transaction of their own (distinct xmin),
    so DEFAULT's ACCESS EXCLUSIVE lock is released between months; the empty ones share one."""
    pol = policy({LE: {"retention": "none", "premake": 5}, **ONLY_LE})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _park_months(conn, [7, 6, 5], 10)
        (le,) = partitions.maintain_all(conn, pol)
        rescued = [_month(conn, m) for m in (-7, -6, -5)]
        empty = [_month(conn, m) for m in (4, 5)]
        assert set(rescued + empty) <= set(le.created) and le.rows_moved == 30
        xmins = dict(
            conn.execute(
                "SELECT relname, xmin::text FROM pg_class WHERE relname = ANY(%s)", (rescued + empty,)
            ).fetchall()
        )
        assert len({xmins[n] for n in rescued}) == 3
        assert len({xmins[n] for n in empty}) == 1 and xmins[empty[0]] not in {xmins[n] for n in rescued}
        for name in rescued:
            assert count(conn, name) == 10
            (row_xmin,) = conn.execute(
                sql.SQL("SELECT DISTINCT xmin::text FROM {}").format(sql.Identifier(name))
            ).fetchone()
            assert row_xmin == xmins[name]


def test_rows_for_an_empty_planned_month_arriving_late_are_moved_not_lost(migrated_db: Database) -> None:
    """A row reaching DEFAULT after the plan for a month planned empty: ATTACH refuses (check
    violation), and that month is rescued instead."""
    pol = policy({LE: {"premake": 5}, **ONLY_LE})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        (target,) = catalog.resolve_targets(conn, pol.enabled_tables())
        now = clock.db_now(conn)
        ready = partitions.prepare(conn, [target], partitions.observe(conn, [target]), now, dry_run=False)
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type)"
            " VALUES (date_trunc('month', now(), 'UTC') + interval '5 months 1 day', 'late')"
        )
        result = partitions.maintain_table(conn, target, now=now, retry=pol, ready=ready[target.oid])
        late = _month(conn, 5)
        assert late in result.created and result.rows_moved == 1
        assert count(conn, late) == 1 and count(conn, f"{LE}_default") == 0
        month = intervals.floor_to(clock.db_now(conn), "month").astimezone(UTC)
        assert intervals.partition_name(LE, intervals.add_intervals(month, "month", 4)) in result.created


def test_a_runs_reads_leave_out_a_busy_default_and_its_table_reads_on_its_own(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job reads the catalog, DEFAULT counts and shapes once for all tables (as maintain_all does),
    never waiting on a lock longer than lock_timeout: a table whose DEFAULT another session holds is
    left out, and its step reads its own under the DDL retry rule once the lock is gone."""
    from flows.partitions.flow import Prepared, table_step

    path = tmp_path / "pgtender.toml"
    path.write_text("[partitions]\nlock_timeout_ms = 100\n[partitions.tables.learning_events]\npremake = 5\n")
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))
    pol = policy({LE: {"premake": 5}, "system_performance_metrics": {}})
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        targets = catalog.resolve_targets(conn, pol.enabled_tables())
        now = clock.db_now(conn)
        with foreign_lock(migrated_db.dsn, f"{LE}_default"):
            prepared = Prepared.read(conn, targets, now=now, dry_run=False, lock_timeout_ms=100)
        assert set(prepared.tables) == {"system_performance_metrics"}
        dry = Prepared.read(conn, targets, now=now, dry_run=True, lock_timeout_ms=100)
        assert set(dry.tables) == {LE, "system_performance_metrics"}  # a dry-run plans it anyway
        before = partitions_of(conn, LE)
        summaries: list[dict[str, Any]] = []

        def work(run: Run) -> Done:  # the step inside a real run of the job (its lock, its ledger row)
            summaries.append(table_step(run, LE, now, False, prepared))  # not prepared: reads its own
            return Done()

        report = custom_run(work, job="partitions")
        assert report.verdict.kind is Kind.DONE, report.verdict
        (summary,) = summaries
        assert summary["created"] == [_month(conn, k) for k in (3, 4, 5)]
        assert partitions_of(conn, LE) == sorted(before + summary["created"])
        (recorded,) = conn.execute(
            "SELECT count(*) FROM capacity_planning_metrics"
            " WHERE metric_name = 'partition_horizon_days' AND resource_name = %s",
            (LE,),
        ).fetchone()
        assert (
            recorded == 0
        )  # in a run, the run records every table's metrics in one insert (test_partitions)
