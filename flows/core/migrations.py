"""Versioned migrations: ``sql/migrations/NNNN_name.up.sql`` + ``.down.sql``.

Each step runs in its own transaction and is recorded in ``schema_migrations`` with the sha256 of
its up file. An applied step whose file changed is refused; two migrators serialise on an advisory
lock; a dry run only reports the plan.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg

from flows.core.db import load_sql, sql_dir
from flows.core.errors import ConfigError

Conn = psycopg.Connection[tuple[Any, ...]]
_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql$")
LOCK_SQL = "SELECT pg_advisory_lock(hashtext('pgtender.migrate'))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext('pgtender.migrate'))"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_path: Path
    down_path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_path.read_bytes()).hexdigest()

    @property
    def description(self) -> str:
        for line in self.up_path.read_text(encoding="utf-8").splitlines():
            if line.startswith("--"):
                return line.lstrip("- ").strip()
        return self.name


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class Step:
    direction: str  # "up" | "down"
    migration: Migration


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir() / "migrations"
    files: dict[int, dict[str, Path]] = {}
    names: dict[int, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ConfigError(f"migration file {path.name} does not match NNNN_name.up.sql / .down.sql")
        version = int(match["version"])
        if names.setdefault(version, match["name"]) != match["name"]:
            raise ConfigError(f"migration version {version:04d} is used by two names")
        files.setdefault(version, {})[match["direction"]] = path
    migrations = []
    for version in sorted(files):
        pair = files[version]
        if "up" not in pair or "down" not in pair:
            raise ConfigError(f"migration {version:04d} needs both an up and a down file")
        migrations.append(Migration(version, names[version], pair["up"], pair["down"]))
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise ConfigError("migration versions must be 0001, 0002, ... without gaps")
    return migrations


def _has_ledger_table(conn: Conn) -> bool:
    row = conn.execute(load_sql("queries/migrations/has_ledger.sql")).fetchone()
    return bool(row and row[0])


def applied(conn: Conn) -> list[Applied]:
    if not _has_ledger_table(conn):
        return []
    return [Applied(*r) for r in conn.execute(load_sql("queries/migrations/applied.sql")).fetchall()]


def verify(migrations: list[Migration], done: list[Applied]) -> None:
    """Refuse to go on when the database and the files disagree."""
    known = {m.version: m for m in migrations}
    for row in done:
        migration = known.get(row.version)
        if migration is None:
            raise ConfigError(
                f"database has migration {row.version:04d} ({row.name}) that this pgtender does not know"
            )
        if migration.checksum != row.checksum:
            raise ConfigError(
                f"migration {row.version:04d}_{row.name} was changed after it was applied "
                f"(checksum {row.checksum[:12]} in the database, {migration.checksum[:12]} on disk)"
            )


def plan(conn: Conn, target: int | None = None, migrations: list[Migration] | None = None) -> list[Step]:
    """The steps that bring the database to ``target`` (default: the newest version)."""
    migrations = migrations if migrations is not None else discover()
    done = applied(conn)
    verify(migrations, done)
    latest = migrations[-1].version if migrations else 0
    target = latest if target is None else target
    if not 0 <= target <= latest:
        raise ConfigError(f"target version {target} is outside 0..{latest}")
    current = max((r.version for r in done), default=0)
    if target >= current:
        return [Step("up", m) for m in migrations if current < m.version <= target]
    return [Step("down", m) for m in reversed(migrations) if target < m.version <= current]


@contextmanager
def migration_lock(conn: Conn) -> Iterator[None]:
    """Session-level advisory lock: a second migrator waits, then finds nothing left to do."""
    if not conn.autocommit:
        raise ValueError("migrations need an autocommit connection (each step is its own transaction)")
    # Wait for the other migrator however long its steps take (lock_timeout is for DDL beside the
    # application's writes, not for this queue); statement_timeout still bounds the wait. The
    # session-level lock outlives the transaction that takes it; SET LOCAL does not.
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = 0")
        conn.execute(LOCK_SQL)
    try:
        yield
    finally:
        conn.execute(UNLOCK_SQL)


def _apply(conn: Conn, step: Step) -> None:
    m = step.migration
    started = time.monotonic()
    with conn.transaction():
        if step.direction == "up":
            conn.execute(m.up_path.read_bytes())
            conn.execute(
                load_sql("queries/migrations/record.sql"),
                {
                    "version": m.version,
                    "name": m.name,
                    "description": m.description,
                    "checksum": m.checksum,
                    "down_sql": m.down_path.read_text(encoding="utf-8"),
                    "execution_ms": int((time.monotonic() - started) * 1000),
                },
            )
        else:
            conn.execute(m.down_path.read_bytes())
            if _has_ledger_table(conn):  # the down step of 0001 drops schema_migrations itself
                conn.execute(load_sql("queries/migrations/forget.sql"), {"version": m.version})


def migrate(
    conn: Conn, target: int | None = None, *, dry_run: bool = False, directory: Path | None = None
) -> list[Step]:
    """Apply (or, when ``target`` is below the current version, undo) steps; returns what ran."""
    migrations = discover(directory)
    if dry_run:
        return plan(conn, target, migrations)
    with migration_lock(conn):
        steps = plan(conn, target, migrations)  # planned under the lock: a waiting migrator re-reads
        for step in steps:
            _apply(conn, step)
    return steps


def rollback(conn: Conn, target: int, *, dry_run: bool = False, directory: Path | None = None) -> list[Step]:
    current = max((r.version for r in applied(conn)), default=0)
    if target < 0 or target > current:
        raise ConfigError(f"cannot roll back to {target}: the database is at version {current}")
    return migrate(conn, target, dry_run=dry_run, directory=directory)


@dataclass(frozen=True)
class StatusRow:
    version: int
    name: str
    applied_at: datetime | None
    state: str  # applied | pending | changed


def status(conn: Conn, directory: Path | None = None) -> list[StatusRow]:
    done = {r.version: r for r in applied(conn)}
    rows = []
    for m in discover(directory):
        row = done.get(m.version)
        if row is None:
            rows.append(StatusRow(m.version, m.name, None, "pending"))
        else:
            state = "applied" if row.checksum == m.checksum else "changed"
            rows.append(StatusRow(m.version, m.name, row.applied_at, state))
    return rows


@lru_cache(maxsize=1)
def newest_version() -> int:
    """The newest migration this pgtender ships (what a run requires of its database)."""
    found = discover()
    return found[-1].version if found else 0
