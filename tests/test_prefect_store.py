"""Prefect's own store on PostgreSQL: the local server `pgtender up` starts keeps its state in a
database of the PostgreSQL pgtender uses (not SQLite); a server without pg_trgm (the embedded one)
keeps SQLite and says why."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from flows.edge import prefect_store
from flows.edge.prefect_server import start_local_server
from tests import embedded_pg
from tests.conftest import _drop_db, _dsn_for


def test_asyncpg_urls_for_tcp_and_socket_dsns() -> None:
    tcp = prefect_store.asyncpg_url(
        "postgresql://pgt:s3cret@db.internal:6432/pgtender_prefect?sslmode=require"
    )
    assert tcp == "postgresql+asyncpg://pgt:s3cret@db.internal:6432/pgtender_prefect?ssl=require"
    sock = prefect_store.asyncpg_url("host=/run/postgresql user=postgres dbname=pgtender_prefect")
    assert sock == "postgresql+asyncpg://postgres@/pgtender_prefect?host=%2Frun%2Fpostgresql"
    assert "s3cret" not in prefect_store.masking.mask_secrets(tcp)


@pytest.mark.slow
def test_local_server_keeps_its_state_in_postgresql(server_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(server_dsn) as conn:
        trgm = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").fetchone()
    if trgm is None:  # the embedded server (no PGTENDER_TEST_DATABASE_URL); CI never skips (conftest)
        pytest.skip("this PostgreSQL has no pg_trgm (the embedded server ships no contrib extensions)")
    name = f"pgtender_prefect_{uuid.uuid4().hex[:8]}"
    try:
        store = prefect_store.prepare(server_dsn, dbname=name)
        assert store.url is not None and store.url.startswith("postgresql+asyncpg://")
        assert store.description.endswith(f"/{name}") and "PostgreSQL" in store.description
        assert prefect_store.prepare(server_dsn, dbname=name).url == store.url  # exists now: reused
        server = start_local_server(tmp_path, database_url=store.url)
        try:
            import httpx

            made = httpx.post(f"{server.api_url}/flows/", json={"name": "pgtender-store-check"}, timeout=30)
            assert made.status_code in (200, 201), made.text
        finally:
            server.stop()
        with psycopg.connect(_dsn_for(server_dsn, name)) as conn:
            flows = conn.execute("SELECT name FROM flow WHERE name = 'pgtender-store-check'").fetchall()
            assert flows == [("pgtender-store-check",)]
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'").fetchone() == (
                1,
            )
        assert not list((tmp_path / "prefect").glob("*.db")), "no SQLite database was made"
    finally:
        _drop_db(server_dsn, name)


def test_without_pg_trgm_the_store_stays_sqlite_and_says_why() -> None:
    with embedded_pg.home("trgm") as home:
        server = embedded_pg.start(home / "pg")
        try:
            store = prefect_store.prepare(server.get_uri(), dbname="pgtender_prefect")
        finally:
            server.cleanup()
    assert store.url is None
    assert "no pg_trgm" in store.description and "PREFECT_SERVER_DATABASE_CONNECTION_URL" in store.description


def test_an_explicit_prefect_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "postgresql+asyncpg://x@y/z")
    store = prefect_store.prepare("postgresql://nobody@127.0.0.1:1/none")  # not even contacted
    assert store.url is None and "PREFECT_SERVER_DATABASE_CONNECTION_URL" in store.description
