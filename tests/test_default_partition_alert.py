"""Rows in a DEFAULT partition: a warning while the daily partitions run can still explain them; a
page when there are too many (``health.default_partition_page_rows``) or when the DEFAULT partition
has not been empty for too long (``health.default_partition_page_hours``, by the probe's own
history). Against the real PostgreSQL; the page through the health flow to a real HTTP receiver."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pydantic
import pytest

from flows import health
from flows.core import clock
from flows.core.policy import settings
from tests.conftest import Database
from tests.test_alerts import Receiver, alert_policy, inbox, receiver  # noqa: F401 - fixtures

CHECK = "health.default_partition_rows"
FAR = ("2199-01-02 00:00+00", "2199-01-03 00:00+00", "2199-01-04 00:00+00")  # no partition will hold them


def _plant(conn: Any, *days: str) -> None:
    for day in days:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, event_type) VALUES (%s, 'evolution_step')", (day,)
        )


def _probe(conn: Any, now: datetime, *, record: bool = True, **policy: Any) -> Any:
    """The DEFAULT probe at ``now``, its rows recorded as a health run would (the history it reads)."""
    run = health.run_probes(
        conn, settings.HealthPolicy.model_validate(policy), now=now, only=("default_partitions",)
    )
    if record:
        health.record(conn, run)
    return next(r for r in run.results if r.target == "learning_events")


def test_a_few_new_rows_warn_too_many_page(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        now = clock.db_now(conn)
        _plant(conn, *FAR)
        fresh = _probe(conn, now, record=False)
        many = _probe(conn, now, record=False, default_partition_page_rows=2)
        tolerated = _probe(conn, now, record=False, default_partition_max_rows=3)
    assert fresh.status == "warning" and fresh.observed["rows"] == 3 and fresh.observed["hours"] == 0.0
    assert fresh.expected == "<= 0 rows; pages above 10000 rows or after 26 h in DEFAULT"
    assert many.status == "failed"
    assert tolerated.status == "passed"


def test_rows_that_stay_page_after_the_hours_and_an_empty_window_starts_over(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        now = clock.db_now(conn)
        assert _probe(conn, now - timedelta(hours=40)).status == "passed"  # empty then
        _plant(conn, *FAR)
        first = _probe(conn, now - timedelta(hours=30))
        later = _probe(conn, now - timedelta(hours=5))
        assert first.status == later.status == "warning"
        late = _probe(conn, now)
        # 30 hours (from the window that first saw them) > 26: fails, and so pages
        assert late.status == "failed" and late.observed["hours"] > 26
        assert datetime.fromisoformat(late.observed["since"]) <= now - timedelta(hours=30)
        shorter = _probe(conn, now, record=False, default_partition_page_hours=48)
        assert shorter.status == "warning"

        # the partitions run (or someone) empties DEFAULT: the next window passes, and rows that
        # arrive afterwards start a new count
        conn.execute("DELETE FROM learning_events_default")
        assert _probe(conn, now + timedelta(minutes=5)).status == "passed"
        _plant(conn, FAR[0])
        again = _probe(conn, now + timedelta(minutes=10))
    assert again.status == "warning" and again.observed["hours"] < 1


def test_the_page_must_be_above_the_warning() -> None:
    with pytest.raises(pydantic.ValidationError, match="default_partition_page_rows"):
        settings.HealthPolicy.model_validate(
            {"default_partition_max_rows": 100, "default_partition_page_rows": 50}
        )


@pytest.mark.calendar
@pytest.mark.usefixtures("prefect_api", "alert_policy")
def test_default_rows_that_stayed_page_once_through_the_health_flow(
    migrated_db: Database, request: pytest.FixtureRequest
) -> None:
    """The demo's case: rows for 2199 in DEFAULT. While they are new, health warns and nothing is
    sent; once health has seen them for more than 26 hours, the health run pages once."""
    from tests.conftest import flow_run

    hook: Receiver = request.getfixturevalue("receiver")
    with migrated_db.connect() as conn:
        now = clock.db_now(conn)
        _plant(conn, *FAR)
    flow_run("health")
    assert [p for p in hook.posts if p["check"] == CHECK] == []  # new rows: a warning only

    with migrated_db.connect() as conn:  # as if health had seen them since 27 hours ago
        _probe(conn, now - timedelta(hours=27))
    flow_run("health")
    flow_run("health")  # still there: no second page
    pages = [p for p in hook.posts if p["check"] == CHECK]
    assert [(p["event"], p["subject"]) for p in pages] == [("page", "learning_events")]
    assert pages[0]["observed"] == 3 and "after 26 h in DEFAULT" in pages[0]["limit"]
    assert "pgtender run partitions" in pages[0]["next_command"]
