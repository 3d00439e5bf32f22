"""Finish what a killed dump-mode run left: drop the tables it detached and marked, record drops it
missed, remove its partial and orphaned files (never a live run's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from flows.core import clock
from flows.core.archives import manifest as manifests
from flows.core.archives.copy_out import StepHook, name_part, no_hook
from flows.core.archives.manifest import read_manifest, write_manifest
from flows.core.archives.ownership import is_partial, removable
from flows.core.archives.store import Store
from flows.core.db import load_sql
from flows.core.ddl import RowCountMismatch
from flows.core.partitioning.catalog import Target
from flows.core.policy.partitions import DdlRetry
from flows.retention.archive import (
    _database,
    _drop_counted,
    _marked_range,
    _marker_prefix,
    dump_into,
    manifests_of,
)
from flows.retention.expired import Expired, count_rows
from flows.retention.results import PartitionAction

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class _Pending:
    """A table a killed run detached and marked, and the manifest of its dump (if any)."""

    exp: Expired
    manifest_name: str | None
    manifest: dict[str, Any] | None


def _finish_one(
    conn: Conn,
    target: Target,
    store: Store,
    found: _Pending,
    *,
    owner: str,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook,
) -> tuple[str, list[str]]:
    """Drop one detached, marked table (re-dumped first when its dump is missing or does not
    match). Returns the manifest's name and the steps taken."""
    name, rows, manifest_name, manifest = found.exp.name, found.exp.rows, found.manifest_name, found.manifest
    steps = ["finish: drop"]
    try:
        if manifest_name is None or manifest is None:
            raise RowCountMismatch(f"{name} has no dump")
        manifests.verify_dump(store, manifest_name)
        if rows != manifest["rows"]:
            raise RowCountMismatch(f"{name} changed after its dump")
    except RowCountMismatch as exc:
        log.warning("re-dumping a detached table before its drop", partition=name, reason=str(exc))
        manifest_name, _ = dump_into(
            conn, target, found.exp, store, owner=owner, retry=retry, log=log, on_step=on_step
        )
        steps = ["finish: dump", "finish: drop"]
    _drop_counted(
        conn, target, name, store, manifest_name, owner=owner, retry=retry, log=log, on_step=on_step
    )
    return manifest_name, steps


def finish_interrupted_dumps(
    conn: Conn,
    target: Target,
    *,
    store: Store,
    owner: str,
    retry: DdlRetry,
    log: Any,
    dry_run: bool = False,
    on_step: StepHook = no_hook,
) -> list[PartitionAction]:
    """Finish what a killed dump-mode run left: drop each table it detached and marked (re-dumping
    it first if its dump is missing or does not match), record drops it missed in their manifests,
    and remove partial and orphaned files that their writers are done with. A partition still
    attached is simply expired again."""
    database = _database(conn)
    actions: list[PartitionAction] = []
    by_oid = {int(m["oid"]): (name, m) for name, m in manifests_of(store, database, target)}
    pending = conn.execute(
        load_sql("queries/retention/pending_drops.sql"),
        {"schema": target.schema, "prefix": _marker_prefix(target)},
    ).fetchall()
    for oid, name, marker in pending:
        rows = count_rows(conn, sql.Identifier(target.schema, name))
        manifest_name, manifest = by_oid.pop(int(oid), (None, None))
        lo, hi = _marked_range(marker)
        action = PartitionAction(
            table=target.name,
            partition=name,
            lower=lo.isoformat(),
            upper=hi.isoformat(),
            mode="dump",
            rows=rows,
            rows_exact=True,
            bytes=0,
            steps=["finish: drop"],
        )
        actions.append(action)
        if dry_run:
            log.info("would finish an interrupted dump", partition=name, rows=rows)
            continue
        exp = Expired(name=name, lo=lo, hi=hi, rows=rows, rows_exact=True, bytes=0, oid=int(oid))
        found = _Pending(exp, manifest_name, manifest)
        manifest_name, action.steps = _finish_one(
            conn, target, store, found, owner=owner, retry=retry, log=log, on_step=on_step
        )
        action.archived_to = str(store.ref(manifest_name))
        log.info("finished an interrupted dump", partition=name, rows=rows, archived_to=action.archived_to)
    relation = load_sql("queries/retention/relation.sql")
    for oid, (manifest_name, manifest) in by_oid.items():
        if manifest.get("dropped_at") or dry_run:
            continue
        if conn.execute(relation, {"oid": oid}).fetchone() is None:
            # dropped by the killed run just before it could write that down
            write_manifest(store, manifest_name, {**manifest, "dropped_at": clock.now().isoformat()}, owner)
    if not dry_run:
        sweep(conn, store, f"{name_part(database)}.{name_part(target.schema)}.", owner)
    return actions


def _kept_file(store: Store, manifest_name: str) -> str:
    """The data file a manifest names; ``*`` (keep them all) when the manifest is unreadable."""
    try:
        return str(read_manifest(store, manifest_name).get("file"))
    except RowCountMismatch:
        return "*"


def sweep(conn: Conn, store: Store, prefix: str, owner: str) -> list[str]:
    """Remove the partials and the data files no manifest names under ``prefix`` (one listing)
    whose writers are done with them (flows.core.archives.ownership); returns what went."""
    names = store.names(prefix)
    present = set(names)
    kept: dict[str, str | None] = {}
    removed = []
    for name in names:
        if name.endswith(".copy.gz"):
            stem = ".".join(name.split(".")[:4])
            if stem not in kept:
                kept[stem] = _kept_file(store, f"{stem}.json") if f"{stem}.json" in present else None
            if kept[stem] in (name, "*"):
                continue
        elif not is_partial(name):
            continue
        if removable(conn, store, name, owner):
            store.remove(name)
            removed.append(name)
    return removed
