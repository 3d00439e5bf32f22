"""What a table needs: its partitions (lock-free catalog read), its DEFAULT rows per interval, and
the plan (partitions to create, DEFAULT rows to rescue, what stays in DEFAULT and why)."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from flows.core.db import set_local
from flows.core.partitioning.catalog import Child, Target, read_children
from flows.core.partitioning.intervals import add_intervals, floor_to, partition_name, subtract_age

Conn = psycopg.Connection[tuple[Any, ...]]
Buckets = dict[datetime | None, int]


def coverage(children: list[Child], lo: datetime, hi: datetime) -> str:
    """'free', 'covered' (fully, by existing partitions) or 'conflict' (partly, or unknown bounds)."""
    overlapping: list[tuple[datetime, datetime]] = []
    for child in children:
        if child.is_default:
            continue
        if child.lo is None or child.hi is None:
            return "conflict"  # MINVALUE/MAXVALUE or unreadable bounds: let nobody guess
        if child.lo < hi and lo < child.hi:
            overlapping.append((child.lo, child.hi))
    if not overlapping:
        return "free"
    cursor = lo
    for c_lo, c_hi in sorted(overlapping):
        if c_lo > cursor:
            return "conflict"
        cursor = max(cursor, c_hi)
    return "covered" if cursor >= hi else "conflict"


@dataclass(frozen=True)
class Planned:
    name: str
    lo: datetime
    hi: datetime
    default_rows: int  # rows in DEFAULT that belong here (at planning time)


@dataclass
class Plan:
    create: list[Planned] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    default_rows: int = 0
    rows_too_old: int = 0
    rows_beyond_horizon: int = 0
    rows_null_key: int = 0
    rows_conflicting: int = 0
    default_key_range: tuple[str | None, str | None] = (None, None)


@dataclass(frozen=True)
class Observed:
    """A table as seen at one moment: its partitions and its DEFAULT rows per bucket.

    ``default_busy``: another session held a lock on DEFAULT, so its rows were not counted
    (``buckets`` is empty); only a dry-run accepts that."""

    children: list[Child]
    buckets: Buckets
    default_busy: bool = False


def _bucket_query(target: Target, tag: int) -> sql.Composed:
    assert target.default is not None
    key = sql.Identifier(target.key)
    if target.key_type == "timestamp with time zone":
        bucket = sql.SQL("date_trunc({unit}, {key} AT TIME ZONE 'UTC')")
    else:
        bucket = sql.SQL("date_trunc({unit}, {key}::timestamp)")
    return sql.SQL("SELECT {tag}::int AS t, {bucket} AS b, count(*) AS n FROM {default} GROUP BY 2").format(
        tag=sql.Literal(tag),
        bucket=bucket.format(unit=sql.Literal(target.policy.interval), key=key),
        default=sql.Identifier(target.schema, target.default),
    )


def default_buckets_all(conn: Conn, targets: list[Target]) -> dict[int, Buckets]:
    """Exact row counts of every DEFAULT partition per interval bucket (None: NULL keys), one query.

    Reads DEFAULT, so it waits (up to the session's ``lock_timeout``) behind an ACCESS EXCLUSIVE
    lock on it."""
    out: dict[int, Buckets] = {t.oid: {} for t in targets}
    parts = [_bucket_query(t, i) for i, t in enumerate(targets) if t.default is not None]
    if not parts:
        return out
    for tag, b, n in conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall():
        out[targets[tag].oid][None if b is None else b.replace(tzinfo=UTC)] = int(n)
    return out


def default_buckets(conn: Conn, target: Target) -> Buckets:
    return default_buckets_all(conn, [target])[target.oid]


def observe(conn: Conn, targets: list[Target]) -> dict[int, Observed]:
    """Partitions and DEFAULT buckets of every target: two statements, whatever the table count."""
    children = read_children(conn, [t.oid for t in targets])
    buckets = default_buckets_all(conn, targets)
    return {t.oid: Observed(children.get(t.oid, []), buckets[t.oid]) for t in targets}


def observe_nowait(conn: Conn, targets: list[Target], lock_timeout_ms: int) -> dict[int, Observed]:
    """``observe`` that never fails on a lock (for dry-runs): a DEFAULT another session has locked
    for longer than ``lock_timeout_ms`` is reported busy instead of counted.

    The catalog read takes no lock; the DEFAULT counts are tried together once, then table by
    table, each under ``lock_timeout``."""
    children = read_children(conn, [t.oid for t in targets])
    try:
        with conn.transaction():
            set_local(conn, "lock_timeout", f"{lock_timeout_ms}ms")
            buckets = default_buckets_all(conn, targets)
        return {t.oid: Observed(children.get(t.oid, []), buckets[t.oid]) for t in targets}
    except psycopg.errors.LockNotAvailable:
        pass
    out: dict[int, Observed] = {}
    for t in targets:
        try:
            with conn.transaction():
                set_local(conn, "lock_timeout", f"{lock_timeout_ms}ms")
                out[t.oid] = Observed(children.get(t.oid, []), default_buckets(conn, t))
        except psycopg.errors.LockNotAvailable:
            out[t.oid] = Observed(children.get(t.oid, []), {}, default_busy=True)
    return out


@functools.lru_cache(maxsize=64)
def _window(current: datetime, interval: str, n: int) -> tuple[datetime, ...]:
    """``current`` and the ``n`` interval bounds after it: the same for every table of a run that
    shares an interval and premake, so computed once (date arithmetic is most of a plan's cost)."""
    return tuple(add_intervals(current, interval, k) for k in range(n + 1))


def plan_table(target: Target, children: list[Child], buckets: Buckets, now: datetime) -> Plan:
    """Partitions to create: the current interval through premake, plus rescuable DEFAULT buckets."""
    policy = target.policy
    current = floor_to(now, policy.interval)
    bounds = _window(current, policy.interval, policy.premake + 1)
    horizon_end = bounds[-1]
    upper = dict(itertools.pairwise(bounds))
    past_limit = floor_to(subtract_age(now, policy.retention or policy.rescue_max_age), policy.interval)
    plan = Plan(default_rows=sum(buckets.values()))
    keyed = [b for b in buckets if b is not None]
    if keyed:
        plan.default_key_range = (min(keyed).isoformat(), max(keyed).isoformat())
    wanted: dict[datetime, int] = dict.fromkeys(bounds[:-1], 0)
    for bucket, n in buckets.items():
        if bucket is None:
            plan.rows_null_key += n
        elif bucket < past_limit:
            plan.rows_too_old += n
        elif bucket >= horizon_end:
            plan.rows_beyond_horizon += n
        else:
            wanted[bucket] = wanted.get(bucket, 0) + n
    exact = {(c.lo, c.hi) for c in children if not c.is_default}  # the usual case, without a scan
    for lo in sorted(wanted):
        hi = upper.get(lo) or add_intervals(lo, policy.interval, 1)
        state = "covered" if (lo, hi) in exact else coverage(children, lo, hi)
        if state == "free":
            plan.create.append(Planned(partition_name(target.name, lo), lo, hi, wanted[lo]))
        elif state == "conflict":
            plan.conflicts.append(f"{lo.date()}..{hi.date()}")
            plan.rows_conflicting += wanted[lo]
    return plan
