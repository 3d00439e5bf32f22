"""The weekly report's data on indexes: what the week's last upkeep run reported as unused or
duplicate (flows.report.data.index_findings), from a real upkeep pass."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from flows.core import db
from flows.core.policy.upkeep import UpkeepPolicy
from flows.report.data import index_findings
from flows.report.week import week_of
from flows.upkeep import upkeep_pass
from tests.conftest import Database
from tests.upkeep_fixtures import db_now, make_items, window_around


def run_once(conn: Any, upkeep: Any, **options: Any) -> Any:
    """The upkeep pass in one call with ``upkeep`` as the policy's [upkeep] section."""
    from flows.core.policy.settings import Policy

    return upkeep_pass(conn, Policy(upkeep=upkeep), **options)


@pytest.mark.calendar
def test_the_report_lists_the_last_runs_unused_and_duplicate_indexes(migrated_db: Database) -> None:
    make_items(migrated_db, "upkeep_items", 1_000)
    with migrated_db.connect() as c:
        c.execute("CREATE INDEX upkeep_items_v_idx ON upkeep_items (v)")
        c.execute("CREATE INDEX upkeep_items_id_idx ON upkeep_items (id)")  # the primary key again
    now = db_now(migrated_db)
    policy = UpkeepPolicy(window=window_around(now, open_now=False), thresholds={"unused_days": 0})
    week = week_of(now.date(), "UTC", complete=False)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        assert index_findings(conn, week) == []  # no upkeep run yet
        with capture_logs():
            run_once(conn, policy, now=now)
        found = index_findings(conn, week)
    kinds: dict[str, dict[str, dict[str, Any]]] = {"unused": {}, "duplicate": {}}
    for row in found:
        kinds[row["kind"]][row["index"]] = row
    assert {"upkeep_items_v_idx", "upkeep_items_id_idx"} <= set(kinds["unused"])
    assert kinds["unused"]["upkeep_items_v_idx"]["table"] == "upkeep_items"
    assert kinds["unused"]["upkeep_items_v_idx"]["detail"] == f"no scans since {now.date()}"
    duplicate = kinds["duplicate"]["upkeep_items_id_idx"]
    assert duplicate["detail"] == "same as upkeep_items_pkey" and duplicate["bytes"] > 0
    assert "upkeep_items_pkey" not in kinds["unused"] | kinds["duplicate"]  # backs a constraint
    assert {r["found_on"] for r in found} == {now.date()}

    # the index dropped by a person, upkeep runs again: the report shows the last run only
    with psycopg.connect(migrated_db.dsn, autocommit=True) as c:
        c.execute("DROP INDEX upkeep_items_id_idx")
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        with capture_logs():
            run_once(conn, policy, now=now + timedelta(seconds=1))
        assert "upkeep_items_id_idx" not in {r["index"] for r in index_findings(conn, week)}
