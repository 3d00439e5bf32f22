"""Versioned migrations: ``sql/migrations/NNNN_name.up.sql`` + ``.down.sql``.

Each step runs in its own transaction and is recorded in ``schema_migrations`` with the sha256 of
its up file. An applied step whose file changed is refused; two migrators serialise on an advisory
lock; a dry run only reports the plan.

Down steps (``rollback``, or ``migrate --to`` below the current version) are judged first by
running them in a transaction that is rolled back (flows/core/drop_guard.py): when they would drop
tables holding rows the plan is refused (exit 2, nothing changed) unless the caller passes
``drop_data`` (flows/core/drop_permit.py), which dumps those tables into the archive store and
verifies the dump before the first step; each step then recounts, under its own locks, the rows of
every table it drops against what was dumped (or found empty) and rolls back on a difference.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from flows.core import drop_guard
from flows.core.db import load_sql, sql_dir
from flows.core.ddl import RowCountMismatch
from flows.core.drop_permit import DropData, Expected, permit
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


def _run_down(conn: Conn, m: Migration) -> None:
    conn.execute(m.down_path.read_bytes())


def _recount(conn: Conn, step: Step, expected: list[tuple[str, str, int]]) -> None:
    """Inside the step's transaction: lock what it drops and count it against the dump (or 0)."""
    for schema, name, rows in expected:
        table = sql.Identifier(schema, name)
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        row = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(table)).fetchone()
        found = int(row[0]) if row else 0
        if found != rows:
            m = step.migration
            raise RowCountMismatch(
                f"down {m.version:04d} {m.name}: {schema}.{name} holds {found} rows, {rows} when it was"
                " checked (and dumped); this step was rolled back, the steps above it are undone:"
                " run the rollback again"
            )


def _apply(conn: Conn, step: Step, expected: list[tuple[str, str, int]] | None = None) -> None:
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
            _recount(conn, step, expected or [])
            _run_down(conn, m)
            if _has_ledger_table(conn):  # the down step of 0001 drops schema_migrations itself
                conn.execute(load_sql("queries/migrations/forget.sql"), {"version": m.version})


def losses(conn: Conn, steps: list[Step]) -> list[drop_guard.StepLoss]:
    """What each down step of ``steps`` would drop (tables, partitions, rows); nothing changes."""
    runs: list[drop_guard.StepRun] = [
        (
            f"down {s.migration.version:04d} {s.migration.name}",
            s.migration.version,
            partial(_run_down, m=s.migration),
        )
        for s in steps
        if s.direction == "down"
    ]
    return drop_guard.inspect(conn, runs)


def _guard(conn: Conn, steps: list[Step], target: int | None, drop_data: DropData | None) -> Expected:
    if not any(s.direction == "down" for s in steps):
        return {}
    return permit(conn, losses(conn, steps), drop_data, what=f"going down to version {target}")


def migrate(
    conn: Conn,
    target: int | None = None,
    *,
    dry_run: bool = False,
    directory: Path | None = None,
    drop_data: DropData | None = None,
) -> list[Step]:
    """Apply (or, when ``target`` is below the current version, undo) steps; returns what ran.

    Down steps that would drop tables holding rows are refused (DataLossRefused, exit 2, nothing
    changed) unless ``drop_data`` says where to dump those tables first."""
    migrations = discover(directory)
    if dry_run:
        return plan(conn, target, migrations)
    with migration_lock(conn):
        steps = plan(conn, target, migrations)  # planned under the lock: a waiting migrator re-reads
        expected = _guard(conn, steps, target, drop_data)
        for step in steps:
            _apply(conn, step, expected.get(step.migration.version))
    return steps


def rollback(
    conn: Conn,
    target: int,
    *,
    dry_run: bool = False,
    directory: Path | None = None,
    drop_data: DropData | None = None,
) -> list[Step]:
    current = max((r.version for r in applied(conn)), default=0)
    if target < 0 or target > current:
        raise ConfigError(f"cannot roll back to {target}: the database is at version {current}")
    return migrate(conn, target, dry_run=dry_run, directory=directory, drop_data=drop_data)


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
