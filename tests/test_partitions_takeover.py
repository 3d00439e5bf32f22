"""Issue 12.8: what the README says about bounds — pgtender cuts at UTC midnights — and about taking
over partitions another tool (pg_partman in a database whose time zone is not UTC) cut at local
midnights: kept as they are, no overlap, and a gap after the last of them that pgtender reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from flows import partitions
from flows.core import db
from flows.core.partitioning import catalog, intervals
from flows.core.policy.partitions import PartitionsPolicy
from tests.conftest import Database

POLICY = PartitionsPolicy.model_validate(
    {
        "lock_timeout_ms": 100,
        "tables": {
            "ev": {"interval": "month", "premake": 3, "retention": "none"},
            "learning_events": {"enabled": False},
            "system_performance_metrics": {"enabled": False},
        },
    }
)


def _bounds(conn: Any) -> dict[str, tuple[datetime, datetime]]:
    (target,) = catalog.resolve_targets(conn, POLICY.enabled_tables())
    children = catalog.read_children(conn, [target.oid])[target.oid]
    return {c.name: (c.lo, c.hi) for c in children if not c.is_default}


def _local_partitions(conn: Any, zone: str) -> list[str]:
    """Monthly partitions from last month to next month, cut at ``zone``'s midnights."""
    conn.execute(sql.SQL("SET TimeZone = {}").format(sql.Literal(zone)))
    conn.execute("CREATE TABLE ev (id bigint, ts timestamptz NOT NULL) PARTITION BY RANGE (ts)")
    conn.execute("CREATE TABLE ev_default PARTITION OF ev DEFAULT")
    names = []
    for k in (-1, 0, 1):
        name = f"ev_local_{k + 1}"
        lo, hi = conn.execute(
            "SELECT date_trunc('month', now()) + %s * interval '1 month',"
            "       date_trunc('month', now()) + (%s + 1) * interval '1 month'",
            (k, k),
        ).fetchone()
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF ev FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(name), sql.Literal(lo), sql.Literal(hi)
            )
        )
        names.append(name)
    conn.execute("RESET TimeZone")
    return names


@pytest.mark.parametrize(
    ("zone", "gap_at_most"),
    [("Europe/Berlin", timedelta(hours=2)), ("America/New_York", timedelta(days=31))],
)
def test_takeover_of_local_time_partitions(zone: str, gap_at_most: timedelta, migrated_db: Database) -> None:
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        local = _local_partitions(conn, zone)
        before = _bounds(conn)
        (result,) = partitions.maintain_all(conn, POLICY)
        after = _bounds(conn)
        created = sorted(set(after) - set(before), key=lambda n: after[n][0])
        # the local partitions are kept as they are; pgtender's own start at UTC midnights
        assert {n: after[n] for n in local} == before
        assert created and result.created == created
        for name in created:
            lo, hi = after[name]
            assert lo == lo.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            assert hi == intervals.add_intervals(lo, "month", 1)
        # no overlap; but between the last local partition and the first UTC one there is a gap
        last_local_hi = max(hi for _, hi in before.values())
        first_utc_lo = after[created[0]][0]
        gap = first_utc_lo - last_local_hi
        assert timedelta(0) < gap <= gap_at_most
        # the UTC interval the gap lies in is reported as a conflict, never created over it
        gap_month = intervals.floor_to(last_local_hi, "month")
        assert result.conflicts == [f"{gap_month.date()}..{first_utc_lo.date()}"]
        # a row in the gap lands in DEFAULT, and stays there (counted as conflicting)
        conn.execute("INSERT INTO ev (id, ts) VALUES (1, %s)", (last_local_hi,))
        (again,) = partitions.maintain_all(conn, POLICY)
        assert again.created == [] and again.rows_conflicting == 1
        assert conn.execute("SELECT count(*) FROM ev_default").fetchone() == (1,)
