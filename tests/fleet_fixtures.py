"""A fleet of three target databases on the test server (CREATE DATABASE, cloned from the demo
template), named in a policy file with per-target overrides; shared by the fleet and worker tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.core import db
from flows.core.policy import settings
from tests.conftest import Database, _create_db, dropper

NAMES = ("alpha", "bravo", "charlie")


class Fleet:
    def __init__(self, dbs: dict[str, Database], config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dbs = dbs
        self.config = config
        self.monkeypatch = monkeypatch

    def write(self, text: str) -> None:
        self.config.write_text(text, encoding="utf-8")
        os.utime(self.config, None)  # the policy cache keys on mtime
        settings._policy_cached.cache_clear()

    def ledger(self, name: str, job: str) -> list[tuple[Any, ...]]:
        with self.dbs[name].connect() as conn:
            return conn.execute(
                "SELECT status, flow_run_id FROM pgtender_operations WHERE job = %s ORDER BY started_at",
                (job,),
            ).fetchall()

    def all_ledgers_empty(self) -> bool:
        return all(d.scalar("SELECT count(*) FROM pgtender_operations") == 0 for d in self.dbs.values())


BASE = """
[fleet]
concurrency = 2
[health]
event_lag_max_seconds = 300
[targets.alpha]
url_env = "FLEET_ALPHA_URL"
[targets.bravo]
url_env = "FLEET_BRAVO_URL"
[targets.bravo.health]
event_lag_max_seconds = 9999
[targets.bravo.report]
timezone = "America/New_York"
recipients = ["bravo-oncall@example.com"]
[targets.charlie]
url_env = "FLEET_CHARLIE_URL"
"""


@pytest.fixture
def fleet(
    server_dsn: str, state_dir: Path, demo_template_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fleet]:
    dbs: dict[str, Database] = {}
    for name in NAMES:
        dbname = f"pgtender_fleet_{name}_{uuid.uuid4().hex[:8]}"
        _create_db(server_dsn, dbname, template=demo_template_db)
        dbs[name] = Database(server_dsn, dbname)
        monkeypatch.setenv(f"FLEET_{name.upper()}_URL", dbs[name].dsn)
    monkeypatch.delenv("PGTENDER_DATABASE_URL", raising=False)
    config = tmp_path / "fleet.toml"
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    fleet = Fleet(dbs, config, monkeypatch)
    fleet.write(BASE)
    try:
        yield fleet
    finally:
        settings._policy_cached.cache_clear()
        db.close_pools()
        for d in dbs.values():
            dropper.drop(server_dsn, d.name)
