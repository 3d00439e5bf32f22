from __future__ import annotations

from pathlib import Path

import psycopg

from flows.core import embedded, settings


def test_embedded_server_starts_on_demand_and_is_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PGTENDER_DATABASE_URL", raising=False)
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(tmp_path / "state"))
    try:
        dsn = settings.dsn()
        assert dsn == settings.dsn()  # same process: same handle
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) >= 150000
        assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()
    finally:
        embedded.stop_embedded(tmp_path / "state")
