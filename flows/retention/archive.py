"""Dump mode: an expired partition is dumped (COPY, gzip, manifest with sha256), verified, detached
and dropped; every step resumable after a kill (restore.py is the way back)."""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from flows.core import clock, operator_files
from flows.core.db import load_sql
from flows.core.ddl import RowCountMismatch, expect_equal, run_locked
from flows.core.errors import ConfigError, DataProblem
from flows.core.partitioning.catalog import Target
from flows.core.policy.partitions import DdlRetry
from flows.retention.expired import Expired, count_rows, detach_partition
from flows.retention.results import PartitionAction

Conn = psycopg.Connection[tuple[Any, ...]]

DUMP_FORMAT = "postgresql-copy-text+gzip"


def _columns(conn: Conn, schema: str, name: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        (sql.Identifier(schema, name).as_string(conn),),
    ).fetchall()
    return [r[0] for r in rows]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(manifest_path: Path) -> dict[str, Any]:
    """A dump's manifest, read with bounds (``ConfigError``: too big, too deep, not a manifest)."""
    manifest = operator_files.read_json(manifest_path, what="dump manifest")
    missing = [k for k in ("file", "sha256", "rows") if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise ConfigError(f"dump manifest {manifest_path} is not a pgtender manifest (no {missing[0]!r})")
    return dict(manifest)


def verify_dump(manifest_path: Path) -> dict[str, Any]:
    """Re-read a dump: its checksum and its row count must match the manifest. Returns the manifest."""
    manifest = read_manifest(manifest_path)
    data = manifest_path.parent / manifest["file"]
    if not data.is_file() or _sha256(data) != manifest["sha256"]:
        raise RowCountMismatch(f"dump {data} does not match its checksum; nothing dropped")
    lines = 0
    with gzip.open(data, "rb") as fh:
        for _ in fh:
            lines += 1
    if lines != manifest["rows"]:
        raise RowCountMismatch(
            f"dump {data} holds {lines} rows, expected {manifest['rows']}; nothing dropped"
        )
    return manifest


# Dump mode, step by step, so that a run killed anywhere is finished by the next one:
#   1. COPY into <stem>.<stamp>.copy.gz.partial, then rename it to <stem>.<stamp>.copy.gz;
#   2. write <stem>.json.partial and rename it over <stem>.json (one manifest per partition:
#      a re-dump replaces it atomically), then remove the stem's other data and partial files;
#   3. DETACH, and mark the detached table (a comment) in the same transaction;
#   4. DROP after recounting against the manifest;
#   5. record dropped_at in the manifest.
# <stem> names the database, schema, partition and its oid. A re-run drops a marked table (step 4),
# re-dumps a partition still attached (steps 1-2) and records a drop it missed (step 5).
StepHook = Callable[[str], None]


def no_hook(_step: str) -> None:
    return None


def _part(text: str) -> str:
    return quote(text, safe="").replace(".", "%2E")


def dump_stem(database: str, schema: str, partition: str, oid: int) -> str:
    return f"{_part(database)}.{_part(schema)}.{_part(partition)}.{oid}"


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


def _durable_replace(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it over ``final`` and fsync the directory: after this returns, a crash
    leaves either the old file or the new one, never a torn one."""
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _durable_replace(tmp, path)


def tidy_stem(dump_dir: Path, stem: str) -> list[Path]:
    """Remove a stem's ``*.partial`` files and the data files its manifest does not name."""
    manifest_path = dump_dir / f"{stem}.json"
    keep = None
    if manifest_path.is_file():
        keep = json.loads(manifest_path.read_text(encoding="utf-8")).get("file")
    removed = []
    for path in dump_dir.glob(f"{glob.escape(stem)}.*"):
        if path.name.endswith(".partial") or (path.name.endswith(".copy.gz") and path.name != keep):
            path.unlink()
            removed.append(path)
    return removed


def _remove_legacy_partials(dump_dir: Path, schema: str, name: str) -> None:
    """Partial files of this partition in the naming of pgtender before resumable dumps."""
    legacy = re.compile(
        re.escape(f"{quote(schema, safe='')}.{quote(name, safe='')}.") + r"\d{8}T\d{6}Z\.copy\.partial"
    )
    for path in dump_dir.glob("*.copy.partial"):
        if legacy.fullmatch(path.name):
            path.unlink()


def _database(conn: Conn) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


def dump_partition(
    conn: Conn,
    target: Target,
    exp: Expired,
    *,
    dump_dir: Path,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook = no_hook,
) -> Path:
    """COPY the partition (attached, or detached by a killed run) to a verified gzip file and
    manifest ``<stem>.json``, replacing an earlier dump of the same table. Returns the manifest."""
    dump_dir.mkdir(parents=True, exist_ok=True)
    name = exp.name
    stem = dump_stem(_database(conn), target.schema, name, exp.oid)
    manifest_path = dump_dir / f"{stem}.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text(encoding="utf-8")).get("dropped_at"):
        raise DataProblem(
            f"{manifest_path} is the archive of a dropped table with the same oid; move it away"
        )
    tidy_stem(dump_dir, stem)
    _remove_legacy_partials(dump_dir, target.schema, name)
    stamp = clock.now().strftime("%Y%m%dT%H%M%S%fZ")
    data = dump_dir / f"{stem}.{stamp}.copy.gz"
    partial = data.with_name(data.name + ".partial")
    table = sql.Identifier(target.schema, name)
    columns = _columns(conn, target.schema, name)

    def work(c: Conn) -> int:
        # Writes into this (expired) partition wait; the parent and other partitions are untouched.
        c.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
        rows = count_rows(c, table)
        cols = sql.SQL(", ").join(sql.Identifier(col) for col in columns)
        with (
            gzip.open(partial, "wb", compresslevel=6) as out,
            c.cursor() as cur,
            cur.copy(sql.SQL("COPY {} ({}) TO STDOUT").format(table, cols)) as copy,
        ):
            for chunk in copy:
                out.write(chunk)
                on_step("copying")
        return rows

    rows = run_locked(conn, work, retry=retry, what=f"dump {target.schema}.{name}", log=log)
    on_step("copied")
    _durable_replace(partial, data)
    on_step("data-renamed")
    manifest = {
        "format": DUMP_FORMAT,
        "file": data.name,
        "database": _database(conn),
        "schema": target.schema,
        "parent": target.name,
        "partition": name,
        "oid": exp.oid,
        "key": target.key,
        "key_type": target.key_type,
        "lower": exp.lo.isoformat(),
        "upper": exp.hi.isoformat(),
        "columns": columns,
        "rows": rows,
        "sha256": _sha256(data),
        "created_at": clock.now().isoformat(),
    }
    _write_manifest(manifest_path, manifest)
    on_step("manifest-written")
    verify_dump(manifest_path)
    tidy_stem(dump_dir, stem)  # the data of the dump this one replaced
    return manifest_path


def _drop_counted(
    conn: Conn,
    target: Target,
    name: str,
    manifest_path: Path,
    *,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook,
) -> None:
    """Drop a detached table when it still holds exactly its dump's rows; record the drop."""
    manifest = verify_dump(manifest_path)
    table = sql.Identifier(target.schema, name)

    def drop(c: Conn) -> None:
        c.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        expect_equal(
            f"{name} against its dump {manifest_path.name}", int(manifest["rows"]), count_rows(c, table)
        )
        c.execute(sql.SQL("DROP TABLE {}").format(table))

    run_locked(conn, drop, retry=retry, what=f"drop {target.schema}.{name}", log=log)
    on_step("dropped")
    _write_manifest(manifest_path, {**manifest, "dropped_at": clock.now().isoformat()})


def drop_after_dump(
    conn: Conn,
    target: Target,
    exp: Expired,
    manifest_path: Path,
    *,
    retry: DdlRetry,
    log: Any,
    on_step: StepHook = no_hook,
) -> None:
    """Detach (and mark, in the same transaction), recount against the dump (re-attach on a
    mismatch), then drop and record the drop in the manifest."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
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
    _drop_counted(conn, target, exp.name, manifest_path, retry=retry, log=log, on_step=on_step)


def _manifests(dump_dir: Path, database: str, target: Target) -> list[tuple[Path, dict[str, Any]]]:
    """This database's manifests of ``target`` written by the step-wise dump (they carry an oid)."""
    out = []
    for path in sorted(dump_dir.glob("*.json")) if dump_dir.is_dir() else []:
        try:
            manifest = operator_files.read_json(path, what="dump manifest")
        except ConfigError:
            continue  # not ours, or unreadable: restore_dump will say so if it is ever used
        if (
            isinstance(manifest, dict)
            and "oid" in manifest
            and (manifest.get("database"), manifest.get("schema"), manifest.get("parent"))
            == (database, target.schema, target.name)
        ):
            out.append((path, manifest))
    return out


def finish_interrupted_dumps(
    conn: Conn,
    target: Target,
    *,
    dump_dir: Path,
    retry: DdlRetry,
    log: Any,
    dry_run: bool = False,
    on_step: StepHook = no_hook,
) -> list[PartitionAction]:
    """Finish what a killed dump-mode run left: drop each table it detached and marked (re-dumping
    it first if its dump is missing or does not match), record drops it missed in their manifests,
    and remove partial and orphaned files. A partition still attached is simply expired again."""
    database = _database(conn)
    actions: list[PartitionAction] = []
    manifests = {int(m["oid"]): (path, m) for path, m in _manifests(dump_dir, database, target)}
    pending = conn.execute(
        load_sql("queries/retention/pending_drops.sql"),
        {"schema": target.schema, "prefix": _marker_prefix(target)},
    ).fetchall()
    for oid, name, marker in pending:
        rows = count_rows(conn, sql.Identifier(target.schema, name))
        path, manifest = manifests.pop(int(oid), (None, None))
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
        try:
            if path is None or manifest is None:
                raise RowCountMismatch(f"{name} has no dump")
            verify_dump(path)
            if rows != manifest["rows"]:
                raise RowCountMismatch(f"{name} changed after its dump")
        except RowCountMismatch as exc:
            log.warning("re-dumping a detached table before its drop", partition=name, reason=str(exc))
            exp = Expired(name=name, lo=lo, hi=hi, rows=rows, rows_exact=True, bytes=0, oid=int(oid))
            path = dump_partition(conn, target, exp, dump_dir=dump_dir, retry=retry, log=log, on_step=on_step)
            action.steps = ["finish: dump", "finish: drop"]
        _drop_counted(conn, target, name, path, retry=retry, log=log, on_step=on_step)
        action.archived_to = str(path)
        log.info("finished an interrupted dump", partition=name, rows=rows, archived_to=str(path))
    relation = load_sql("queries/retention/relation.sql")
    for oid, (path, manifest) in manifests.items():
        if manifest.get("dropped_at") or dry_run:
            continue
        row = conn.execute(relation, {"oid": oid}).fetchone()
        if row is None:  # dropped by the killed run just before it could write that down
            _write_manifest(path, {**manifest, "dropped_at": clock.now().isoformat()})
        tidy_stem(dump_dir, path.name.removesuffix(".json"))
    return actions
