"""The date logic of partitions, retention, quality and health at every instant of the calendar
matrix, with ``now`` as a parameter: partition windows and bounds, the DEFAULT rescue's plan, the
horizon, retention expiry, quality's yesterday, health windows, cron firings and the watchdog.

The expected values are tests/dates.py's, written out by hand per instant; no clock is moved (the
few tests that need PostgreSQL's clock moved are marked ``calendar``, see tests/calendar.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from psycopg import sql

from checks import Suite
from flows import health
from flows.core import db, schedules
from flows.core.errors import ConfigError
from flows.core.partitioning import intervals
from flows.core.partitioning.catalog import Child, Target, horizon_days
from flows.core.policy import settings
from flows.core.policy.partitions import TablePolicy
from flows.health import checks, watchdog
from flows.partitions.plan import plan_table
from flows.quality import evaluate, options
from flows.retention import expired
from tests import conftest, databases
from tests.calendar import instants
from tests.dates import FACTS, midnight, month

LE = "learning_events"


def _target(**policy: object) -> Target:
    return Target("public", LE, 1, "occurred_at", "timestamp with time zone", "me", f"{LE}_default",
                  TablePolicy.model_validate(policy))  # fmt: skip


def _monthly(first: date, ks: range) -> list[Child]:
    """Monthly partitions ``first + k`` for k in ``ks`` (named as pgtender names them) and DEFAULT."""
    parts = [
        Child(
            f"{LE}_p{month(first, k):%Y%m%d}", False, midnight(month(first, k)), midnight(month(first, k + 1))
        )
        for k in ks
    ]
    return [Child(f"{LE}_default", True, None, None), *parts]


def _names(days: list[date]) -> list[str]:
    return [f"{LE}_p{d:%Y%m%d}" for d in days]


@pytest.fixture(scope="module")
def instant_db(server_dsn: str, templates: conftest.Templates) -> Iterator[conftest.Database]:
    """One migrated database for the cases that read a catalog or a table (each removes what it adds)."""
    name = databases.spares.take(server_dsn, templates.get("migrated", conftest._build_migrated))
    yield conftest.Database(server_dsn, name)
    databases.dropper.drop(server_dsn, name)


# ------------------------------------------------------------------ intervals and names


@instants()
def test_interval_bounds_and_ages(now: datetime) -> None:
    f = FACTS[now]
    assert intervals.floor_to(now, "day") == midnight(f.today)
    assert intervals.floor_to(now, "week") == midnight(f.monday)
    assert intervals.floor_to(now, "month") == midnight(f.month)
    assert intervals.add_intervals(midnight(f.month), "month", 1) == midnight(month(f.month, 1))
    assert intervals.add_intervals(midnight(f.month), "month", -13) == midnight(month(f.month, -13))
    assert intervals.floor_to(now, "month") <= now < intervals.add_intervals(midnight(f.month), "month", 1)
    assert intervals.subtract_age(now, "1 month") == f.minus_month
    assert intervals.subtract_age(now, "90 days") == now - timedelta(days=90)
    assert intervals.subtract_age(now, "8 weeks") == now - timedelta(weeks=8)
    twelve = intervals.subtract_age(now, "12 months")
    assert (twelve.year, twelve.month) == (now.year - 1, now.month) and twelve.time() == now.time()
    assert twelve.day == min(now.day, 28 if now.month == 2 else now.day)  # 2028-02-29 -> 2027-02-28
    assert intervals.partition_name(LE, intervals.floor_to(now, "month")) == f"{LE}_p{f.month:%Y%m%d}"


# ------------------------------------------------------------------ partitions: the plan


@instants()
def test_monthly_plan_fills_the_horizon_and_rescues_what_it_covers(now: datetime) -> None:
    """Around the partitions migration 0005 makes (3 months back to 2 ahead), premake 3: the month
    +3 is created, DEFAULT rows of month -5 get their partition, the rest stays in DEFAULT."""
    f = FACTS[now]
    buckets: dict[datetime | None, int] = {
        midnight(month(f.month, -5)): 137,  # a month without a partition: rescued
        midnight(f.month): 4,  # covered already (an ATTACH race lost): left alone
        midnight(month(f.month, 4)): 11,  # beyond the horizon (current + premake)
        datetime(1970, 1, 1, tzinfo=UTC): 1,  # older than rescue_max_age
        None: 2,
    }
    plan = plan_table(_target(premake=3), _monthly(f.month, range(-3, 3)), buckets, now)
    assert [p.name for p in plan.create] == _names([month(f.month, -5), month(f.month, 3)])
    assert [(p.lo, p.hi, p.default_rows) for p in plan.create] == [
        (midnight(month(f.month, -5)), midnight(month(f.month, -4)), 137),
        (midnight(month(f.month, 3)), midnight(month(f.month, 4)), 0),
    ]
    assert (plan.default_rows, plan.rows_beyond_horizon, plan.rows_too_old, plan.rows_null_key) == (
        155,
        11,
        1,
        2,
    )
    assert plan.conflicts == [] and plan.rows_conflicting == 0
    empty = plan_table(_target(premake=3), [], {}, now)  # a new table: the current month and 3 ahead
    assert [p.name for p in empty.create] == _names([month(f.month, k) for k in range(4)])


@instants()
def test_weekly_and_daily_plans_start_at_the_current_interval(now: datetime) -> None:
    f = FACTS[now]
    weekly = plan_table(_target(interval="week", premake=2, retention="8 weeks"), [], {}, now)
    assert _names([f.monday + timedelta(weeks=k) for k in range(3)]) == [p.name for p in weekly.create]
    assert weekly.create[0].lo.weekday() == 0 and weekly.create[0].lo <= now < weekly.create[0].hi
    daily = plan_table(_target(interval="day", premake=1, retention="1 day"), [], {}, now)
    assert [(p.lo, p.hi) for p in daily.create] == [
        (midnight(f.today), midnight(f.today + timedelta(days=1))),
        (midnight(f.today + timedelta(days=1)), midnight(f.today + timedelta(days=2))),
    ]


@instants()
def test_horizon_counts_contiguous_partitions_from_now(now: datetime) -> None:
    f = FACTS[now]
    children = _monthly(f.month, range(-3, 3))
    assert horizon_days(children, now) == round(
        (midnight(month(f.month, 3)) - now).total_seconds() / 86400, 3
    )
    gap = [c for c in children if c.lo != midnight(month(f.month, 1))]  # next month missing
    assert horizon_days(gap, now) == round((midnight(month(f.month, 1)) - now).total_seconds() / 86400, 3)
    assert horizon_days([c for c in children if c.lo != midnight(f.month)], now) == 0.0  # none holds now


# ------------------------------------------------------------------ retention: what has expired


@instants()
def test_retention_expires_whole_partitions_before_now_minus_the_age(now: datetime) -> None:
    f = FACTS[now]
    children = _monthly(f.month, range(-6, 3))

    def gone(age: str) -> list[str]:
        return [
            c.name for c in expired.expired_children(children, TablePolicy(retention=age, premake=1), now)
        ]

    assert gone("1 month") == _names([month(f.month, k) for k in range(-6, -1)])  # up to month -2
    assert gone("3 months") == _names([month(f.month, k) for k in range(-6, -3)])
    assert expired.expiry_cutoff(TablePolicy(retention="1 month", premake=1), now) == f.minus_month
    assert expired.expired_children(children, TablePolicy(retention=None), now) == []
    # never the current interval, however short the retention
    daily = [
        Child(
            f"d{k}", False, midnight(f.today + timedelta(days=k)), midnight(f.today + timedelta(days=k + 1))
        )
        for k in range(-5, 2)
    ]
    day_policy = TablePolicy(interval="day", retention="1 day", premake=1)
    assert [c.name for c in expired.expired_children(daily, day_policy, now)] == ["d-5", "d-4", "d-3", "d-2"]
    weeks = [
        Child(
            f"w{k}",
            False,
            midnight(f.monday + timedelta(weeks=k)),
            midnight(f.monday + timedelta(weeks=k + 1)),
        )
        for k in range(-5, 2)
    ]
    week_policy = TablePolicy(interval="week", retention="2 weeks", premake=1)
    assert [c.name for c in expired.expired_children(weeks, week_policy, now)] == ["w-5", "w-4", "w-3"]


# ------------------------------------------------------------------ quality: the day


@instants()
def test_quality_day_is_yesterday_and_never_the_future(now: datetime) -> None:
    f = FACTS[now]
    assert options.parse_day(None, today=now.date()) == f.yesterday
    assert options.parse_day(f.today.isoformat(), today=now.date()) == f.today
    with pytest.raises(ConfigError, match="in the future"):
        options.parse_day((f.today + timedelta(days=1)).isoformat(), today=now.date())
    window = options.day_window(f.yesterday, now)
    assert (window.start, window.end, window.now) == (midnight(f.yesterday), midnight(f.today), now)


@instants()
def test_quality_finds_the_days_partition_from_catalog_bounds(
    now: datetime, instant_db: conftest.Database
) -> None:
    """Yesterday's monthly partition (last year's December on 1 January); a day with none: DEFAULT."""
    f = FACTS[now]
    table = f"q_{now:%Y%m%d%H%M%S}"
    suite = Suite(name=table, table=table, time_column="at", expectations=())
    with db.connect(instant_db.dsn, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE TABLE {} (at timestamptz NOT NULL) PARTITION BY RANGE (at)").format(
                sql.Identifier(table)))  # fmt: skip
            conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
                sql.Identifier(f"{table}_default"), sql.Identifier(table)))  # fmt: skip
            for k in (-1, 0):  # last month's partition and this month's, named like no convention
                lo, hi = midnight(month(f.month, k)), midnight(month(f.month, k + 1))
                conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(f"{table}_m{k + 1}"), sql.Identifier(table), sql.Literal(lo), sql.Literal(hi)))  # fmt: skip
            info = evaluate.partition_info(conn, suite, options.parse_day(None, today=now.date()))
            old = evaluate.partition_info(conn, suite, month(f.month, -2))
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    assert info == {"partitioned": True, "partition": f"{table}_m{0 if f.yesterday < f.month else 1}"}
    assert old is not None and old["partition"] == f"{table}_default" and "DEFAULT" in old["note"]


# ------------------------------------------------------------------ health: windows, firings, watchdog


@instants()
def test_health_window_holds_now(now: datetime) -> None:
    start, end = health.window_of(now)
    assert (start, end) == (FACTS[now].health_window, FACTS[now].health_window + timedelta(minutes=5))
    assert start <= now < end


@instants()
def test_probes_read_their_windows_back_from_now(now: datetime, instant_db: conftest.Database) -> None:
    """The latest quality window up to now (yesterday's UTC day; not one ending later), the newest
    event that has happened (not one stamped in the future), with ``now`` given."""
    f = FACTS[now]
    with db.connect(instant_db.dsn, autocommit=True) as conn:
        try:
            for end, statuses in (
                (midnight(f.yesterday), ["failed"] * 5),
                (midnight(f.today), ["passed"] * 8 + ["failed", "error"]),
                (midnight(f.today + timedelta(days=1)), ["failed"] * 3),  # a window not over yet
            ):
                for i, status in enumerate(statuses):
                    conn.execute(
                        "INSERT INTO data_quality_checks (check_name, suite, target, window_start, window_end,"
                        " status) VALUES (%s, 'learning_events', 'learning_events', %s, %s, %s)",
                        (f"expect_{i}", end - timedelta(days=1), end, status),
                    )
            conn.execute(
                "INSERT INTO learning_events (occurred_at, ingested_at, event_type) VALUES"
                " (%(t)s - interval '10 minutes', %(t)s - interval '9 minutes', 'x'), (%(t)s + interval '1 hour', %(t)s, 'x')",
                {"t": now},
            )
            run = health.run_probes(
                conn, settings.HealthPolicy(), now=now, only=("quality_score", "event_lag")
            )
        finally:
            conn.execute("DELETE FROM data_quality_checks")
            conn.execute("DELETE FROM learning_events")
    by = {r.check_name: r for r in run.results}
    score, lag = by["health.quality_score"], by["health.event_lag"]
    assert score.observed is not None and lag.observed is not None
    assert datetime.fromisoformat(score.observed["window_end"]) == midnight(f.today)
    assert (score.observed["score_pct"], score.observed["failing"], score.status) == (80.0, 2, "failed")
    assert lag.observed["lag_seconds"] == 600.0 and lag.observed["max_ingest_delay_seconds"] == 60.0


@instants()
def test_cron_firings_and_periods(now: datetime) -> None:
    f = FACTS[now]
    assert schedules.Schedule("5 0 * * *", "UTC").fires(now, 1) == [f.next_partitions]
    assert schedules.Schedule("0 3 * * 0", "UTC").fires(now, 1) == [f.next_retention]
    report = schedules.Schedule("0 8 * * 1", "Europe/Berlin")
    assert report.fires(now, 1) == [f.next_report]
    assert report.fires_between(f.last_report, f.next_report + timedelta(seconds=1)) == [
        f.last_report,
        f.next_report,
    ]
    around = schedules.Schedule("*/5 * * * *", "UTC").fires_around(now, 2)
    assert around == [f.health_window - timedelta(minutes=5), f.health_window,
                      f.health_window + timedelta(minutes=5), f.health_window + timedelta(minutes=10)]  # fmt: skip
    assert schedules.expected_period("*/5 * * * *", now) == timedelta(minutes=5)
    assert schedules.expected_period("5 0 * * *", now) == timedelta(days=1)
    assert schedules.expected_period("0 8 * * *", now, "Europe/Berlin") == timedelta(
        hours=f.berlin_daily_period_hours
    )
    assert schedules.expected_period("0 8 * * 1", now, "Europe/Berlin") == timedelta(days=7, hours=1)


@instants()
def test_watchdog_judges_by_the_schedules_period_at_now(now: datetime) -> None:
    policy = settings.HealthPolicy()  # grace factor 1.5
    ctx = checks.Context(now=now, schedules={"partitions": "5 0 * * *", "report": "0 8 * * 1"},
                         timezones={"report": "Europe/Berlin"})  # fmt: skip

    def status(job: str, success: datetime | None, first: datetime | None = None, **kw: object) -> str:
        pol = policy.model_copy(update=kw)
        return watchdog.judge(
            job, last_success=success, last_start=success, first_op=first, policy=pol, ctx=ctx
        ).status

    assert status("partitions", now - timedelta(hours=36)) == "passed"
    assert status("partitions", now - timedelta(hours=36, seconds=1)) == "failed"
    assert status("partitions", None, now - timedelta(hours=1)) == "skipped"  # pgtender is new here
    assert status("partitions", None, now - timedelta(hours=37)) == "failed"
    # the report ran at its last firing (Monday 08:00 Berlin): on time with no grace, DST or not
    assert (
        status("report", FACTS[now].last_report + timedelta(seconds=20), watchdog_grace_factor=1) == "passed"
    )
