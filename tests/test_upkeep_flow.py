"""The upkeep flow through the run lifecycle (ledger, lock, alerts, artifact, dry run, bad input)
against a real PostgreSQL and a real HTTP receiver for the pages; on a fleet of targets too."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows.core.policy import settings
from tests.conftest import Database, flow_run
from tests.fleet_fixtures import BASE, NAMES, Fleet
from tests.upkeep_fixtures import (
    LOCK_TIMEOUT_MS,
    PolicyFile,
    db_now,
    index_state,
    make_items,
    policy_toml,
    window_around,
)

pytestmark = pytest.mark.usefixtures("prefect_api")


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)

    def of(self, check: str) -> list[tuple[str, str]]:
        return [(p["event"], p["subject"]) for p in self.posts if p["check"] == check]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    posts: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers.get("content-length", "0")))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", posts)
    finally:
        server.shutdown()
        server.server_close()


CHANNEL = '[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "UPKEEP_HOOK"\n'


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Iterator[PolicyFile]:
    path = tmp_path / "pgtender.toml"
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))
    monkeypatch.setenv("UPKEEP_HOOK", receiver.url)
    yield PolicyFile(path)
    settings._policy_cached.cache_clear()


def upkeep_policy(database: Database, *, open_now: bool = True, **upkeep: Any) -> dict[str, Any]:
    return {
        "lock_timeout_ms": LOCK_TIMEOUT_MS,
        "window": window_around(db_now(database), open_now=open_now),
        "thresholds": {"min_index_mb": 1},
        **upkeep,
    }


def _ledger(database: Database) -> list[tuple[str, dict[str, Any]]]:
    with database.connect() as conn:
        return conn.execute(
            "SELECT status, counts FROM pgtender_operations WHERE job = 'upkeep' ORDER BY started_at"
        ).fetchall()


def _invalid(database: Database) -> None:
    make_items(database, "upkeep_items", 20_000, distinct=5_000)
    with database.connect() as c:
        with pytest.raises(psycopg.errors.UniqueViolation):
            c.execute("CREATE UNIQUE INDEX CONCURRENTLY upkeep_items_v_key ON upkeep_items (v)")
        c.execute("DELETE FROM upkeep_items WHERE id > 5000")
    _settle()
    with database.connect() as c:
        c.execute("VACUUM upkeep_items")


def test_an_invalid_index_pages_is_rebuilt_and_resolves(
    migrated_db: Database, policy_file: PolicyFile, receiver: Receiver
) -> None:
    _invalid(migrated_db)
    policy_file.write(upkeep_policy(migrated_db), CHANNEL)
    state = flow_run("upkeep")
    assert state.is_completed() and state.name == "Completed", state.message
    assert index_state(migrated_db, "upkeep_items_v_key")[0] is True  # type: ignore[index]
    # found, paged and rebuilt: one page, then its resolve, in the same run
    assert receiver.of("upkeep.invalid_index") == [
        ("page", "upkeep_items_v_key"),
        ("resolve", "upkeep_items_v_key"),
    ]
    ((status, counts),) = _ledger(migrated_db)
    assert status == "completed" and counts["rebuilt"] == 1 and counts["invalid_indexes"] == 1
    assert counts["analyzed"] == 2 and counts["checks"] >= 3
    with migrated_db.connect() as conn:
        current = conn.execute(
            "SELECT check_name, status FROM data_quality_checks WHERE suite = 'upkeep' AND is_current"
            " AND target = 'upkeep_items_v_key'"
        ).fetchall()
    assert current == [("upkeep.invalid_index", "passed")]

    # the next run: nothing left to do, nothing sent
    again = flow_run("upkeep")
    assert again.name == "Completed" and len(receiver.posts) == 2
    assert _ledger(migrated_db)[-1][1]["analyze_due"] == 0


@pytest.mark.calendar  # the window around the database's now, at every instant of the matrix
def test_outside_the_window_an_invalid_index_pages_and_waits(
    migrated_db: Database, policy_file: PolicyFile, receiver: Receiver
) -> None:
    _invalid(migrated_db)
    policy_file.write(upkeep_policy(migrated_db, open_now=False), CHANNEL)
    state = flow_run("upkeep")
    assert state.message.startswith("Problems found: ")
    assert "invalid index upkeep_items_v_key on upkeep_items: outside the window" in (state.message or "")
    assert index_state(migrated_db, "upkeep_items_v_key")[0] is False  # type: ignore[index]
    assert receiver.of("upkeep.invalid_index") == [("page", "upkeep_items_v_key")]
    assert _ledger(migrated_db)[0][0] == "problems"
    # still failing: no second page
    assert flow_run("upkeep").message.startswith("Problems found: ")
    assert len(receiver.of("upkeep.invalid_index")) == 1


def test_autovacuum_behind_pages_once_and_resolves_after_a_vacuum(
    migrated_db: Database, policy_file: PolicyFile, receiver: Receiver
) -> None:
    make_items(migrated_db, "upkeep_items", 20_000)  # autovacuum off
    with migrated_db.connect() as c:
        c.execute("UPDATE upkeep_items SET v = v + 1")
    policy_file.write(upkeep_policy(migrated_db), CHANNEL)
    _settle()
    first = flow_run("upkeep")
    assert first.message.startswith("Problems found: ") and "autovacuum is behind on upkeep_items" in (
        first.message or ""
    )
    assert receiver.of("upkeep.vacuum") == [("page", "upkeep_items")]
    page = next(p for p in receiver.posts if p["check"] == "upkeep.vacuum")
    assert page["next_command"].startswith("VACUUM (VERBOSE) upkeep_items") and page["target"] == "default"
    assert flow_run("upkeep").message.startswith("Problems found: ")
    assert len(receiver.posts) == 1
    with migrated_db.connect() as c:
        _settle()
        c.execute("VACUUM upkeep_items")
    _settle()
    assert flow_run("upkeep").name == "Completed"
    assert receiver.of("upkeep.vacuum") == [("page", "upkeep_items"), ("resolve", "upkeep_items")]


def _settle() -> None:
    """Other sessions' statistics reach the shared counters within a second."""
    import time

    time.sleep(1.2)


def test_a_dry_run_flow_writes_only_its_ledger_row(
    migrated_db: Database, policy_file: PolicyFile, receiver: Receiver
) -> None:
    _invalid(migrated_db)
    policy_file.write(upkeep_policy(migrated_db), CHANNEL)
    state = flow_run("upkeep", dry_run=True)
    assert state.message.startswith("Problems found: ") and "dry run: not rebuilt" in (state.message or "")
    assert index_state(migrated_db, "upkeep_items_v_key")[0] is False  # type: ignore[index]
    assert receiver.posts == []
    ((status, counts),) = _ledger(migrated_db)
    assert status == "problems" and counts["dry_run"] is True and counts["analyze_due"] == 2
    assert counts["analyzed"] == 0 and counts["rebuilt"] == 0
    with migrated_db.connect() as conn:
        written = conn.execute(
            "SELECT (SELECT count(*) FROM data_quality_checks WHERE suite = 'upkeep'),"
            " (SELECT count(*) FROM capacity_planning_metrics WHERE metric_name LIKE 'upkeep.%'),"
            " (SELECT count(*) FROM pg_stats WHERE tablename = 'learning_events' AND inherited)"
        ).fetchone()
    assert written == (0, 0, 0)


@pytest.mark.parametrize(
    ("upkeep", "message"),
    [
        ({"include": ["no_such_table"]}, "upkeep.include names 'no_such_table', which is not a table"),
        ({"exclude": ["nope"]}, "upkeep.exclude names 'nope'"),
        ({"schema_name": "nowhere"}, "upkeep.schema_name 'nowhere' is not a schema"),
        ({"window": {"start": "03:00", "end": "03:00"}}, "the window never opens"),
        ({"thresholds": {"bloat_pct": -1}}, "upkeep.thresholds.bloat_pct"),
    ],
)
def test_bad_input_is_one_line_and_touches_nothing(
    migrated_db: Database, policy_file: PolicyFile, upkeep: dict[str, Any], message: str
) -> None:
    policy_file.write(upkeep)
    state = flow_run("upkeep")
    assert state.is_failed() and (state.message or "").startswith("Bad input: ")
    assert message in (state.message or "") and "\n" not in (state.message or "")
    # a policy that cannot be read changes nothing and leaves no row; a plan that refuses (a table
    # that does not exist) leaves its `rejected` row: nothing else changed
    assert _ledger(migrated_db) in ([], [("rejected", {})])


def test_upkeep_sweeps_every_target_of_the_fleet(fleet: Fleet) -> None:
    now = db_now(fleet.dbs["alpha"])
    fleet.write(BASE + "\n" + policy_toml({"window": window_around(now, open_now=True)}))
    state = flow_run("upkeep")
    assert state.name in ("Completed", "Failed"), state.message
    for name in NAMES:
        assert f"{name}: " in (state.message or "")
        rows = fleet.ledger(name, "upkeep")
        assert [r[0] for r in rows] in (["completed"], ["problems"]), (name, rows)
        stats = fleet.dbs[name].scalar(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'learning_events' AND inherited"
        )
        assert stats > 0, name
    assert len({fleet.ledger(n, "upkeep")[0][1] for n in NAMES}) == 1  # one flow run for the fleet
