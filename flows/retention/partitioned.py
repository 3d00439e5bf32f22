"""Partitioned tables"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from flows.core.archives.copy_out import StepHook, no_hook
from flows.core.archives.ownership import new_owner
from flows.core.archives.store import Store
from flows.core.db import load_sql
from flows.core.ddl import RowCountMismatch, expect_equal, run_locked
from flows.core.errors import DataProblem
from flows.core.logs import get_logger
from flows.core.partitioning.catalog import Target
from flows.core.policy.partitions import DdlRetry, RetentionPolicy
from flows.retention.archive import DumpDir, as_store, drop_dumped, dump_into
from flows.retention.expired import (
    Expired,
    count_rows,
    detach_partition,
    expired_partitions,
    range_rows_in_parent,
)
from flows.retention.results import PartitionAction, TableOutcome
from flows.retention.resume import finish_interrupted_dumps

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "retention"


def drop_partitions(conn: Conn, target: Target, expired: list[Expired], *, retry: DdlRetry, log: Any) -> None:
    """DETACH + DROP every expired partition of one table in one transaction (one commit per table,
    a few milliseconds of ACCESS EXCLUSIVE on the parent); after the detaches the parent must show
    no rows of those ranges, else everything rolls back."""

    def work(c: Conn) -> None:
        for exp in expired:
            detach_partition(c, target, exp.name)
        left = range_rows_in_parent(c, target, expired)
        expect_equal(f"rows of the ranges of {names} still in {target.name}", 0, left)
        for exp in expired:
            c.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(target.schema, exp.name)))

    names = ", ".join(e.name for e in expired)
    run_locked(conn, work, retry=retry, what=f"drop {target.schema}.{{{names}}}", log=log)


def keep_partition(
    conn: Conn, target: Target, exp: Expired, *, archive_schema: str, retry: DdlRetry, log: Any
) -> str:
    """DETACH and move into the archive schema (one transaction); counts compared. Returns its name."""
    before = count_rows(conn, sql.Identifier(target.schema, exp.name))
    exists = conn.execute(
        load_sql("queries/partitions/relation_exists.sql"), {"schema": archive_schema, "name": exp.name}
    ).fetchone()
    if exists is not None:
        raise DataProblem(f"archive schema {archive_schema} already holds a table {exp.name}; nothing moved")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(archive_schema)))

    def work(c: Conn) -> None:
        detach_partition(c, target, exp.name)
        expect_equal(
            f"rows of {exp.name}'s range still in {target.name}", 0, range_rows_in_parent(c, target, [exp])
        )
        c.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(target.schema, exp.name), sql.Identifier(archive_schema)
            )
        )

    run_locked(conn, work, retry=retry, what=f"archive {target.schema}.{exp.name}", log=log)
    after = count_rows(conn, sql.Identifier(archive_schema, exp.name))
    if after < before:
        raise RowCountMismatch(
            f"{archive_schema}.{exp.name} holds {after} rows, {before} before the move (nothing was deleted)"
        )
    return f"{archive_schema}.{exp.name}"


def expire_partitions(
    conn: Conn,
    target: Target,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dump_dir: DumpDir,
    dry_run: bool = False,
    log: Any = None,
    on_step: StepHook = no_hook,
    owner: str | None = None,
    on_expired: Callable[[int, int], None] = lambda rows, nbytes: None,
) -> TableOutcome:
    """Finish what a killed run left half-done, then archive per policy, detach and drop every
    expired partition of one table (oldest first). ``on_step`` is called after each step of the
    dump mode (tests stop a run there; a run checks its lock there). ``owner`` names the run in its
    partial files (its ledger operation: flows.core.archives.ownership); default a fresh token.
    ``on_expired(rows, bytes)`` after each partition is gone (the run's ledger row counts it)."""
    log = (log or get_logger(job=JOB)).bind(table=f"{target.schema}.{target.name}")
    mode = target.policy.archive
    exact = policy.exact_counts or dry_run or mode != "drop"
    outcome = TableOutcome(table=target.name, schema=target.schema, kind="partitioned", dry_run=dry_run)
    how = _Removal(
        store=as_store(dump_dir),
        owner=owner or new_owner(),
        policy=policy,
        log=log,
        on_step=on_step,
        on_expired=on_expired,
    )
    _finish_interrupted(conn, target, outcome, how, dry_run=dry_run)
    found = run_locked(
        conn,
        lambda c: expired_partitions(c, target, now=now, exact=exact),
        retry=policy,
        what=f"inspect {target.schema}.{target.name}",
        log=log,
    )
    for exp in found:
        action = _planned_action(target, exp, mode)
        outcome.actions.append(action)
        if dry_run:
            log.info("would expire partition", partition=exp.name, mode=mode, rows=exp.rows, bytes=exp.bytes)
        elif mode != "drop":  # drop: all of this table's expired partitions at once, below
            _archive_one(conn, target, exp, action, outcome, how=how)
    if mode == "drop" and found and not dry_run:
        _drop_all(conn, target, found, outcome, how)
    return outcome


@dataclass(frozen=True, kw_only=True)
class _Removal:
    """How one run archives and removes the partitions of a table."""

    store: Store
    owner: str
    policy: RetentionPolicy
    log: Any
    on_step: StepHook
    on_expired: Callable[[int, int], None]


def _finish_interrupted(
    conn: Conn, target: Target, outcome: TableOutcome, how: _Removal, *, dry_run: bool
) -> None:
    """What a killed run left half-done, finished first (dry run: only reported)."""
    for action in finish_interrupted_dumps(
        conn,
        target,
        store=how.store,
        owner=how.owner,
        retry=how.policy,
        log=how.log,
        dry_run=dry_run,
        on_step=how.on_step,
    ):
        outcome.actions.append(action)
        if not dry_run:
            outcome.rows_archived += action.rows
            outcome.rows_removed += action.rows


_STEPS = {
    "drop": ("detach", "drop"),
    "keep": ("detach", "archive"),
    "dump": ("dump", "detach", "drop"),
}


def _planned_action(target: Target, exp: Expired, mode: str) -> PartitionAction:
    """What happens to one expired partition in this mode (its steps), before it happens."""
    return PartitionAction(
        table=target.name,
        partition=exp.name,
        lower=exp.lo.isoformat(),
        upper=exp.hi.isoformat(),
        mode=mode,
        rows=exp.rows,
        rows_exact=exp.rows_exact,
        bytes=exp.bytes,
        steps=list(_STEPS[mode]),
    )


def _archive_one(
    conn: Conn, target: Target, exp: Expired, action: PartitionAction, outcome: TableOutcome, *, how: _Removal
) -> None:
    """Keep mode: moved into the archive schema; dump mode: dumped, verified, detached, dropped."""
    policy, log, store = how.policy, how.log, how.store
    if action.mode == "keep":
        action.archived_to = keep_partition(
            conn, target, exp, archive_schema=policy.archive_schema, retry=policy, log=log
        )
        outcome.rows_archived += exp.rows
        outcome.bytes_archived += exp.bytes
    else:
        name, manifest = dump_into(
            conn, target, exp, store, owner=how.owner, retry=policy, log=log, on_step=how.on_step
        )
        action.archived_to = str(store.ref(name))
        action.rows = int(manifest["rows"])
        drop_dumped(
            conn, target, exp, store, name, owner=how.owner, retry=policy, log=log, on_step=how.on_step
        )
        outcome.rows_archived += action.rows
        outcome.rows_removed += action.rows
        outcome.bytes_removed += exp.bytes
        outcome.bytes_archived += store.size(manifest["file"])
        how.on_expired(action.rows, exp.bytes)
    log.info(
        "partition expired",
        partition=exp.name,
        mode=action.mode,
        rows=action.rows,
        archived_to=action.archived_to,
    )


def _drop_all(conn: Conn, target: Target, found: list[Expired], outcome: TableOutcome, how: _Removal) -> None:
    """Drop mode: every expired partition of the table in one transaction."""
    drop_partitions(conn, target, found, retry=how.policy, log=how.log)
    outcome.rows_removed = sum(e.rows for e in found)
    outcome.bytes_removed = sum(e.bytes for e in found)
    for e in found:
        how.on_expired(e.rows, e.bytes)
    how.log.info("partitions dropped", partitions=[e.name for e in found], rows=outcome.rows_removed)
