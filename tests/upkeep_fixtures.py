"""What the upkeep tests share: a policy file with a window around the database's now, tables to
work on, and a writer beside the maintenance with a watch on its lock waits."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from flows.core.policy import settings
from tests.conftest import Database

LOCK_TIMEOUT_MS = 500
# What a lock wait may exceed lock_timeout by before the test calls it a stall (the watch polls
# every 10 ms; a writer stalled behind maintenance would wait for the whole statement, seconds).
SLACK_S = 1.0
# A single insert on this shared 2-core machine: a generous ceiling, not a latency claim.
INSERT_CEILING_S = 10.0


def window_around(now: datetime, *, open_now: bool) -> dict[str, str]:
    """A UTC window that is open at ``now`` (an hour either side) or closed (opens in an hour)."""
    now = now.astimezone(UTC)
    if open_now:
        start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    else:
        start, end = now + timedelta(hours=1), now + timedelta(hours=2)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "timezone": "UTC"}


def db_now(database: Database) -> datetime:
    with database.connect() as conn:
        value: datetime = conn.execute("SELECT now()").fetchone()[0]
    return value


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def policy_toml(upkeep: dict[str, Any], extra: str = "") -> str:
    """``[upkeep]`` (its tables ``window`` and ``thresholds`` as sub-tables) plus ``extra``."""
    lines = ["[upkeep]"]
    tables = {k: v for k, v in upkeep.items() if isinstance(v, dict)}
    lines += [f"{k} = {toml_value(v)}" for k, v in upkeep.items() if not isinstance(v, dict)]
    for name, values in tables.items():
        lines.append(f"[upkeep.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n" + extra


@dataclass
class PolicyFile:
    path: Path

    def write(self, upkeep: dict[str, Any], extra: str = "") -> None:
        self.path.write_text(policy_toml(upkeep, extra), encoding="utf-8")
        os.utime(self.path, None)
        settings._policy_cached.cache_clear()


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PolicyFile]:
    path = tmp_path / "pgtender.toml"
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))
    file = PolicyFile(path)
    file.write({})
    yield file
    settings._policy_cached.cache_clear()


def make_items(database: Database, table: str, rows: int, *, distinct: int | None = None) -> None:
    """``table (id bigserial primary key, v int, pad text)``: ``rows`` rows, ``v`` in ``distinct``
    values (default: all different), autovacuum off (the tests decide when it is vacuumed)."""
    ident = sql.Identifier(table)
    with database.connect() as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, v int, pad text) WITH (autovacuum_enabled = false)"
            ).format(ident)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (v, pad) SELECT g %% %s, repeat('x', 20) FROM generate_series(1, %s) g"
            ).format(ident),
            (distinct or rows + 1, rows),
        )


def index_state(database: Database, index: str) -> tuple[bool, int] | None:
    with database.connect() as conn:
        row = conn.execute(
            "SELECT i.indisvalid, pg_relation_size(i.indexrelid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            (index,),
        ).fetchone()
    return None if row is None else (bool(row[0]), int(row[1]))


def index_names(database: Database, table: str) -> list[str]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = %s::regclass ORDER BY 1",
            (table,),
        ).fetchall()
    return [r[0] for r in rows]


@dataclass
class Writer:
    """Single-row inserts into ``table`` on their own connection, for as long as it runs, with a
    watch that polls the writer's backend: how long it was seen waiting on a lock without a break.
    ``statement``: the insert (``{}`` is the table)."""

    database: Database
    table: str
    statement: str = "INSERT INTO {} (v, pad) VALUES (1000000000 + %s, 'w')"
    inserts: int = 0
    errors: list[str] = field(default_factory=list)
    longest_lock_wait_s: float = 0.0
    lock_wait_samples: int = 0
    max_insert_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _pid: int = 0

    def __enter__(self) -> Writer:
        ready = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(ready,), daemon=True),
            threading.Thread(target=self._watch, args=(ready,), daemon=True),
        ]
        for t in self._threads:
            t.start()
        assert ready.wait(10), "the writer did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # a few inserts after the maintenance too
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _write(self, ready: threading.Event) -> None:
        query = sql.SQL(self.statement).format(sql.Identifier(self.table))
        with psycopg.connect(self.database.dsn, autocommit=True) as conn:
            self._pid = conn.info.backend_pid
            ready.set()
            i = 0
            while not self._stop.is_set():
                i += 1
                started = time.perf_counter()
                try:
                    conn.execute(query, (i,))
                    self.inserts += 1
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.max_insert_s = max(self.max_insert_s, time.perf_counter() - started)
                time.sleep(0.002)

    def _watch(self, ready: threading.Event) -> None:
        ready.wait(10)
        waiting_since: float | None = None
        with psycopg.connect(self.database.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (self._pid,)
                ).fetchone()
                now = time.monotonic()
                if row and row[0]:
                    self.lock_wait_samples += 1
                    waiting_since = waiting_since or now
                    self.longest_lock_wait_s = max(self.longest_lock_wait_s, now - waiting_since)
                else:
                    waiting_since = None
                time.sleep(0.01)

    def assert_never_stalled(self, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> None:
        """The writer kept writing, and never waited on a lock longer than lock_timeout (+ slack)."""
        bound = lock_timeout_ms / 1000.0 + SLACK_S
        assert not self.errors, self.errors[:3]
        assert self.inserts > 0
        assert self.longest_lock_wait_s <= bound, (self.longest_lock_wait_s, self.lock_wait_samples)
        assert self.max_insert_s <= lock_timeout_ms / 1000.0 + INSERT_CEILING_S, self.max_insert_s
