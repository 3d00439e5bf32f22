"""Dump mode: an expired partition is dumped (COPY, gzip, manifest with sha256) into the archive
store, verified there, detached and dropped; every step resumable after a kill (restore.py is the
way back). The format, the store and the ownership of partial files are flows.core.archives'."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from flows.core import clock
from flows.core.archives import manifest as manifests
from flows.core.archives.copy_out import (
    StepHook,
    columns,
    copy_to_store,
    dump_stem,
    name_part,
    no_hook,
)
from flows.core.archives.manifest import DUMP_FORMAT, file_sha256, read_manifest, write_manifest
from flows.core.archives.ownership import is_partial, new_owner, removable
from flows.core.archives.store import ArchiveRef, Store, locate, open_store
from flows.core.ddl import RowCountMismatch, expect_equal, run_locked
from flows.core.errors import DataProblem
from flows.core.partitioning.catalog import Target
from flows.core.policy.partitions import DdlRetry
from flows.retention.expired import Expired, count_rows, detach_partition

Conn = psycopg.Connection[tuple[Any, ...]]
DumpDir = Store | Path | str  # where dumps go: a store, or a path / URL opened with default options

_sha256 = file_sha256  # a local dump's checksum (tests damage a file and re-sign it)


def as_store(dump_dir: DumpDir) -> Store:
    return dump_dir if isinstance(dump_dir, Store) else open_store(dump_dir)


def verify_dump(manifest: ArchiveRef) -> dict[str, Any]:
    """Re-read a dump: its checksum and its row count must match the manifest. Returns the manifest."""
    store, name = locate(manifest)
    return manifests.verify_dump(store, name)


# Dump mode, step by step, so that a run killed anywhere is finished by the next one:
#   1. COPY into <stem>.<stamp>.<owner>.copy.gz.<owner>.partial, publish it (rename, or copy in an
#      object store) as <stem>.<stamp>.<owner>.copy.gz;
#   2. write <stem>.json atomically (one manifest per partition: a re-dump replaces it), verify it
#      in the store, then remove the stem's partials and data files no manifest names (a live run's
#      never: flows.core.archives.ownership);
#   3. DETACH, and mark the detached table (a comment) in the same transaction;
#   4. DROP after recounting against the manifest;
#   5. record dropped_at in the manifest.
# <stem> names the database, schema, partition and its oid. A re-run drops a marked table (step 4),
# re-dumps a partition still attached (steps 1-2) and records a drop it missed (step 5).


def dump_stamp(moment: datetime) -> str:
    """The stamp in a dump's data file name: UTC to the microsecond, names sort by time."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _marker_prefix(target: Target) -> str:
    return f"pgtender retention: detached from {target.schema}.{target.name} after its dump; drop pending;"


def detach_marker(target: Target, lo: datetime, hi: datetime) -> str:
    """The comment a detached, not yet dropped table carries (with the range it had)."""
    return f"{_marker_prefix(target)} range [{lo.isoformat()}, {hi.isoformat()})"


def _marked_range(marker: str) -> tuple[datetime, datetime]:
    found = re.search(r"range \[(?P<lo>[^,\]]+), (?P<hi>[^)]+)\)$", marker)
    if found is None:
        raise DataProblem(f"unreadable retention marker {marker!r}; drop the table by hand once checked")
    return datetime.fromisoformat(found["lo"]), datetime.fromisoformat(found["hi"])


def tidy_stem(conn: Conn, store: Store, stem: str, owner: str) -> list[str]:
    """Remove a stem's partials and the data files its manifest does not name, when ``owner`` may
    (its own, or a finished run's); returns the names removed."""
    keep = None
    if store.exists(f"{stem}.json"):
        keep = read_manifest(store, f"{stem}.json").get("file")
    removed = []
    for name in store.names(f"{stem}."):
        orphan = name.endswith(".copy.gz") and name != keep
        if (is_partial(name) or orphan) and removable(conn, store, name, owner):
            store.remove(name)
            removed.append(name)
    return removed


def _remove_legacy_partials(store: Store, schema: str, name: str) -> None:
    """Partial files of this partition in the naming of pgtender before resumable dumps."""
    legacy = re.compile(
        re.escape(f"{quote(schema, safe='')}.{quote(name, safe='')}.") + r"\d{8}T\d{6}Z\.copy\.partial"
    )
    for found in store.names(f"{quote(schema, safe='')}."):
        if legacy.fullmatch(found):
            store.remove(found)


def _database(conn: Conn) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


def dump_into(
    conn: Conn,
    target: Target,
    exp: Expired,
    store: Store,
    *,
    owner: str,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook = no_hook,
) -> tuple[str, dict[str, Any]]:
    """COPY the partition (attached, or detached by a killed run) into a verified dump and manifest
    ``<stem>.json``, replacing an earlier dump of the same table. Returns the manifest's name and it."""
    name = exp.name
    database = _database(conn)
    stem = dump_stem(database, target.schema, name, exp.oid)
    manifest_name = f"{stem}.json"
    if store.exists(manifest_name) and read_manifest(store, manifest_name).get("dropped_at"):
        raise DataProblem(
            f"{store.ref(manifest_name)} is the archive of a dropped table with the same oid; move it away"
        )
    tidy_stem(conn, store, stem, owner)
    _remove_legacy_partials(store, target.schema, name)
    data = f"{stem}.{dump_stamp(clock.now())}.{owner}.copy.gz"
    table = sql.Identifier(target.schema, name)
    cols = columns(conn, target.schema, name)
    source = sql.SQL("{} ({})").format(table, sql.SQL(", ").join(sql.Identifier(c) for c in cols))

    def work(c: Conn) -> tuple[int, str]:
        # Writes into this (expired) partition wait; the parent and other partitions are untouched.
        c.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
        rows = count_rows(c, table)
        return rows, copy_to_store(c, source, store, data, owner=owner, on_step=on_step)

    rows, sha = run_locked(conn, work, retry=retry, what=f"dump {target.schema}.{name}", log=log)
    on_step("data-renamed")
    manifest = {
        "format": DUMP_FORMAT,
        "file": data,
        "database": database,
        "schema": target.schema,
        "parent": target.name,
        "partition": name,
        "oid": exp.oid,
        "key": target.key,
        "key_type": target.key_type,
        "lower": exp.lo.isoformat(),
        "upper": exp.hi.isoformat(),
        "columns": cols,
        "rows": rows,
        "sha256": sha,
        "created_at": clock.now().isoformat(),
    }
    write_manifest(store, manifest_name, manifest, owner)
    on_step("manifest-written")
    manifests.verify_dump(store, manifest_name)  # read back from the store before anything is dropped
    tidy_stem(conn, store, stem, owner)  # the data of the dump this one replaced
    return manifest_name, manifest


def dump_partition(
    conn: Conn,
    target: Target,
    exp: Expired,
    *,
    dump_dir: DumpDir,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook = no_hook,
    owner: str | None = None,
) -> ArchiveRef:
    """``dump_into`` a store given as a store, path or URL; returns where the manifest is."""
    store = as_store(dump_dir)
    name, _ = dump_into(
        conn, target, exp, store, owner=owner or new_owner(), retry=retry, log=log, on_step=on_step
    )
    return store.ref(name)


def _drop_counted(
    conn: Conn,
    target: Target,
    name: str,
    store: Store,
    manifest_name: str,
    *,
    owner: str,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook,
) -> None:
    """Drop a detached table when it still holds exactly its dump's rows; record the drop."""
    manifest = manifests.verify_dump(store, manifest_name)
    table = sql.Identifier(target.schema, name)

    def drop(c: Conn) -> None:
        c.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        expect_equal(f"{name} against its dump {manifest_name}", int(manifest["rows"]), count_rows(c, table))
        c.execute(sql.SQL("DROP TABLE {}").format(table))

    run_locked(conn, drop, retry=retry, what=f"drop {target.schema}.{name}", log=log)
    on_step("dropped")
    write_manifest(store, manifest_name, {**manifest, "dropped_at": clock.now().isoformat()}, owner)


def drop_dumped(
    conn: Conn,
    target: Target,
    exp: Expired,
    store: Store,
    manifest_name: str,
    *,
    owner: str,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook = no_hook,
) -> None:
    """Detach (and mark, in the same transaction), recount against the dump (re-attach on a
    mismatch), then drop and record the drop in the manifest."""
    manifest = read_manifest(store, manifest_name)
    table = sql.Identifier(target.schema, exp.name)
    marker = detach_marker(target, exp.lo, exp.hi)

    def detach(c: Conn) -> None:
        detach_partition(c, target, exp.name)
        c.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(marker)))

    run_locked(conn, detach, retry=retry, what=f"detach {target.schema}.{exp.name}", log=log)
    on_step("detached")
    now_rows = count_rows(conn, table)
    if now_rows != manifest["rows"]:

        def reattach(c: Conn) -> None:
            c.execute(sql.SQL("COMMENT ON TABLE {} IS NULL").format(table))
            c.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    target.ident, table, target.bound(exp.lo), target.bound(exp.hi)
                )
            )

        run_locked(conn, reattach, retry=retry, what=f"re-attach {target.schema}.{exp.name}", log=log)
        raise RowCountMismatch(
            f"{exp.name} changed after its dump ({now_rows} rows, dump {manifest['rows']});"
            " re-attached, nothing dropped"
        )
    _drop_counted(
        conn, target, exp.name, store, manifest_name, owner=owner, retry=retry, log=log, on_step=on_step
    )


def drop_after_dump(
    conn: Conn,
    target: Target,
    exp: Expired,
    manifest: ArchiveRef,
    *,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook = no_hook,
) -> None:
    """``drop_dumped`` for a manifest given by its path (or URL, default store options)."""
    store, name = locate(manifest)
    drop_dumped(conn, target, exp, store, name, owner=new_owner(), retry=retry, log=log, on_step=on_step)


def manifests_of(store: Store, database: str, target: Target) -> list[tuple[str, dict[str, Any]]]:
    """This database's manifests of ``target`` written by the step-wise dump (they carry an oid)."""
    out = []
    for name in store.names(f"{name_part(database)}.{name_part(target.schema)}."):
        if not name.endswith(".json"):
            continue
        try:
            manifest = read_manifest(store, name)
        except (RowCountMismatch, FileNotFoundError):
            continue  # not ours, or unreadable: restore_dump will say so if it is ever used
        owner = (manifest.get("database"), manifest.get("schema"), manifest.get("parent"))
        if "oid" in manifest and owner == (database, target.schema, target.name):
            out.append((name, manifest))
    return out
