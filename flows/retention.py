"""Retention: archive → detach → drop expired partitions; batched DELETE in plain tables.

Partitioned tables (policy ``[partitions.tables.*]`` with a ``retention``): a partition whose upper
bound is older than ``now - retention`` — never the current or a future one, never DEFAULT — is

- ``drop``: detached and dropped in one transaction (rows left in the parent's range after the
  detach must be 0, else it rolls back);
- ``keep``: detached and moved to the archive schema in one transaction; its rows are counted
  before and in the archive after;
- ``dump``: COPYed (text format) to a gzip file under ``dump_dir`` with a JSON manifest (rows,
  sha256); the file is re-read and verified before anything is detached; after the detach the
  table is counted again and re-attached on any mismatch; only then dropped.

Plain tables (``[retention.plain.*]``): batched DELETE, one transaction per batch, the batch's
selected and deleted counts compared before commit; the run stops at ``max_seconds``.
Every DDL step runs under ``lock_timeout`` with retries (``flows.ddl.run_locked``).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import psycopg
import structlog
from prefect import flow
from prefect.client.schemas.objects import State
from psycopg import sql

from flows.core import clock, lifecycle, locks, metrics, runtime, settings
from flows.core.catalog import KEY_TYPES, Target, resolve_targets
from flows.core.db import load_sql
from flows.core.ddl import RowCountMismatch, expect_equal, run_locked
from flows.core.errors import ConfigError, ProblemsFound, raise_worst
from flows.core.forms import DryRun
from flows.core.intervals import floor_to, subtract_age
from flows.core.logs import get_logger
from flows.core.outcomes import Done, Outcome
from flows.core.partition_policy import DdlRetry, PlainTablePolicy, RetentionPolicy, TablePolicy

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "retention"
DUMP_FORMAT = "postgresql-copy-text+gzip"


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class Expired:
    name: str
    lo: datetime
    hi: datetime
    rows: int
    rows_exact: bool
    bytes: int
    oid: int = 0


def _count(conn: Conn, table: sql.Composable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    return int(row[0]) if row else 0


def expired_partitions(conn: Conn, target: Target, *, now: datetime, exact: bool) -> list[Expired]:
    """Partitions wholly older than ``now - retention`` and older than the current interval."""
    policy = target.policy
    if policy.retention is None:
        return []
    cutoff = min(subtract_age(now, policy.retention), floor_to(now, policy.interval))
    out: list[Expired] = []
    rows = conn.execute(load_sql("queries/retention/children.sql"), {"oid": target.oid}).fetchall()
    for name, is_default, lo, hi, size, estimate, oid in rows:
        if is_default or lo is None or hi is None or hi > cutoff:
            continue
        if exact or int(estimate) < 0:
            n, is_exact = _count(conn, sql.Identifier(target.schema, name)), True
        else:
            n, is_exact = int(estimate), False
        out.append(Expired(name, lo, hi, n, is_exact, int(size), int(oid)))
    return sorted(out, key=lambda e: e.lo)


def _detach(c: Conn, target: Target, name: str) -> None:
    c.execute(
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
            target.ident, sql.Identifier(target.schema, name)
        )
    )


def _range_rows_in_parent(c: Conn, target: Target, exp: Expired) -> int:
    row = c.execute(
        sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
            t=target.ident, k=sql.Identifier(target.key), lo=target.bound(exp.lo), hi=target.bound(exp.hi)
        )
    ).fetchone()
    return int(row[0]) if row else 0


def drop_partitions(conn: Conn, target: Target, expired: list[Expired], *, retry: DdlRetry, log: Any) -> None:
    """DETACH + DROP every expired partition of one table in one transaction (one commit per table,
    a few milliseconds of ACCESS EXCLUSIVE on the parent); after the detaches the parent must show
    no rows of those ranges, else everything rolls back."""

    def work(c: Conn) -> None:
        for exp in expired:
            _detach(c, target, exp.name)
            left = _range_rows_in_parent(c, target, exp)
            expect_equal(f"rows of {exp.name}'s range still in {target.name}", 0, left)
        for exp in expired:
            c.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(target.schema, exp.name)))

    names = ", ".join(e.name for e in expired)
    run_locked(conn, work, retry=retry, what=f"drop {target.schema}.{{{names}}}", log=log)


def keep_partition(
    conn: Conn, target: Target, exp: Expired, *, archive_schema: str, retry: DdlRetry, log: Any
) -> str:
    """DETACH and move into the archive schema (one transaction); counts compared. Returns its name."""
    before = _count(conn, sql.Identifier(target.schema, exp.name))
    exists = conn.execute(
        load_sql("queries/partitions/relation_exists.sql"), {"schema": archive_schema, "name": exp.name}
    ).fetchone()
    if exists is not None:
        raise ProblemsFound(
            f"archive schema {archive_schema} already holds a table {exp.name}; nothing moved"
        )
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(archive_schema)))

    def work(c: Conn) -> None:
        _detach(c, target, exp.name)
        expect_equal(
            f"rows of {exp.name}'s range still in {target.name}", 0, _range_rows_in_parent(c, target, exp)
        )
        c.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(target.schema, exp.name), sql.Identifier(archive_schema)
            )
        )

    run_locked(conn, work, retry=retry, what=f"archive {target.schema}.{exp.name}", log=log)
    after = _count(conn, sql.Identifier(archive_schema, exp.name))
    if after < before:
        raise RowCountMismatch(
            f"{archive_schema}.{exp.name} holds {after} rows, {before} before the move (nothing was deleted)"
        )
    return f"{archive_schema}.{exp.name}"


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


def verify_dump(manifest_path: Path) -> dict[str, Any]:
    """Re-read a dump: its checksum and its row count must match the manifest. Returns the manifest."""
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
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


def _no_hook(_step: str) -> None:
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
        raise ProblemsFound(f"unreadable retention marker {marker!r}; drop the table by hand once checked")
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
    on_step: StepHook = _no_hook,
) -> Path:
    """COPY the partition (attached, or detached by a killed run) to a verified gzip file and
    manifest ``<stem>.json``, replacing an earlier dump of the same table. Returns the manifest."""
    dump_dir.mkdir(parents=True, exist_ok=True)
    name = exp.name
    stem = dump_stem(_database(conn), target.schema, name, exp.oid)
    manifest_path = dump_dir / f"{stem}.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text(encoding="utf-8")).get("dropped_at"):
        raise ProblemsFound(
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
        rows = _count(c, table)
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
        expect_equal(f"{name} against its dump {manifest_path.name}", int(manifest["rows"]), _count(c, table))
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
    on_step: StepHook = _no_hook,
) -> None:
    """Detach (and mark, in the same transaction), recount against the dump (re-attach on a
    mismatch), then drop and record the drop in the manifest."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    table = sql.Identifier(target.schema, exp.name)
    marker = detach_marker(target, exp.lo, exp.hi)

    def detach(c: Conn) -> None:
        _detach(c, target, exp.name)
        c.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(marker)))

    run_locked(conn, detach, retry=retry, what=f"detach {target.schema}.{exp.name}", log=log)
    on_step("detached")
    now_rows = _count(conn, table)
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
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
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
    on_step: StepHook = _no_hook,
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
        rows = _count(conn, sql.Identifier(target.schema, name))
        path, manifest = manifests.pop(int(oid), (None, None))
        lo, hi = _marked_range(marker)
        action = PartitionAction(
            target.name, name, lo.isoformat(), hi.isoformat(), "dump", rows, True, 0, ["finish: drop"]
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
            exp = Expired(name, lo, hi, rows, True, 0, int(oid))
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


def restore_dump(conn: Conn, manifest_path: Path, *, schema: str, table: str, key: str | None = None) -> int:
    """Load a verified dump into an existing table with the same columns; returns rows loaded.

    Refused (ConfigError, nothing loaded) when the table already holds rows of the dump's range on
    the partition key: the partition was restored before, or never dropped. Restores into the same
    table wait for each other.
    """
    manifest = verify_dump(manifest_path)
    data = manifest_path.parent / manifest["file"]
    key = key or manifest.get("key")
    if not key:
        raise ConfigError(f"{manifest_path.name} does not name its partition key: pass key=")
    ident = sql.Identifier(schema, table)
    cols = sql.SQL(", ").join(sql.Identifier(col) for col in manifest["columns"])
    lo, hi = datetime.fromisoformat(manifest["lower"]), datetime.fromisoformat(manifest["upper"])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('pgtender.restore'), hashtext(%s))",
            (ident.as_string(conn),),
        )
        row = cur.execute(
            load_sql("queries/retention/key_type.sql"), {"table": ident.as_string(conn), "key": key}
        )
        found = row.fetchone()
        if found is None:
            raise ConfigError(f"{schema}.{table} has no column {key}")
        bound = Target(schema, table, 0, key, str(found[0]), "", None, TablePolicy()).bound
        present = cur.execute(
            sql.SQL("SELECT count(*) FROM {t} WHERE {k} >= {lo} AND {k} < {hi}").format(
                t=ident, k=sql.Identifier(key), lo=bound(lo), hi=bound(hi)
            )
        ).fetchone()
        if present and present[0]:
            raise ConfigError(
                f"{schema}.{table} already holds {present[0]} rows of {manifest['partition']}'s range"
                f" [{manifest['lower']}, {manifest['upper']}): restored before, or never dropped;"
                " nothing loaded"
            )
        with (
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(ident, cols)) as copy,
            gzip.open(data, "rb") as fh,
        ):
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                copy.write(chunk)
        loaded = cur.rowcount
        expect_equal(f"restore of {data.name}", int(manifest["rows"]), loaded)
    return loaded


@dataclass
class PartitionAction:
    table: str
    partition: str
    lower: str
    upper: str
    mode: str
    rows: int
    rows_exact: bool
    bytes: int
    steps: list[str]
    archived_to: str | None = None


@dataclass
class TableOutcome:
    table: str
    schema: str
    kind: str  # partitioned | plain
    dry_run: bool
    actions: list[PartitionAction] = field(default_factory=list)
    rows_removed: int = 0
    bytes_removed: int = 0
    rows_archived: int = 0
    bytes_archived: int = 0
    rows_remaining: int = 0  # plain tables: expired rows left when the time budget ran out
    complete: bool = True

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def expire_partitions(
    conn: Conn,
    target: Target,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dump_dir: Path,
    dry_run: bool = False,
    log: Any = None,
    on_step: StepHook = _no_hook,
) -> TableOutcome:
    """Finish what a killed run left half-done, then archive per policy, detach and drop every
    expired partition of one table (oldest first). ``on_step`` is called after each step of the
    dump mode (tests stop a run there)."""
    log = (log or get_logger(job=JOB)).bind(table=f"{target.schema}.{target.name}")
    mode = target.policy.archive
    exact = policy.exact_counts or dry_run or mode != "drop"
    outcome = TableOutcome(target.name, target.schema, "partitioned", dry_run)
    label = f"{target.schema}.{target.name}"
    for action in finish_interrupted_dumps(
        conn, target, dump_dir=dump_dir, retry=policy, log=log, dry_run=dry_run, on_step=on_step
    ):
        outcome.actions.append(action)
        if not dry_run:
            outcome.rows_archived += action.rows
            outcome.rows_removed += action.rows
    found = run_locked(
        conn,
        lambda c: expired_partitions(c, target, now=now, exact=exact),
        retry=policy,
        what=f"inspect {label}",
        log=log,
    )
    for exp in found:
        steps = {
            "drop": ["detach", "drop"],
            "keep": ["detach", "archive"],
            "dump": ["dump", "detach", "drop"],
        }
        action = PartitionAction(
            target.name, exp.name, exp.lo.isoformat(), exp.hi.isoformat(), mode, exp.rows, exp.rows_exact,
            exp.bytes, steps[mode],
        )  # fmt: skip
        outcome.actions.append(action)
        if dry_run:
            log.info("would expire partition", partition=exp.name, mode=mode, rows=exp.rows, bytes=exp.bytes)
            continue
        if mode == "drop":
            continue  # all of this table's expired partitions at once, below
        if mode == "keep":
            action.archived_to = keep_partition(
                conn, target, exp, archive_schema=policy.archive_schema, retry=policy, log=log
            )
            outcome.rows_archived += exp.rows
            outcome.bytes_archived += exp.bytes
        else:
            manifest_path = dump_partition(
                conn, target, exp, dump_dir=dump_dir, retry=policy, log=log, on_step=on_step
            )
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            action.archived_to = str(manifest_path)
            action.rows = int(manifest["rows"])
            drop_after_dump(conn, target, exp, manifest_path, retry=policy, log=log, on_step=on_step)
            outcome.rows_archived += action.rows
            outcome.rows_removed += action.rows
            outcome.bytes_removed += exp.bytes
            outcome.bytes_archived += (manifest_path.parent / manifest["file"]).stat().st_size
        log.info(
            "partition expired",
            partition=exp.name,
            mode=mode,
            rows=action.rows,
            archived_to=action.archived_to,
        )
    if mode == "drop" and found and not dry_run:
        drop_partitions(conn, target, found, retry=policy, log=log)
        outcome.rows_removed = sum(e.rows for e in found)
        outcome.bytes_removed = sum(e.bytes for e in found)
        log.info("partitions dropped", partitions=[e.name for e in found], rows=outcome.rows_removed)
    return outcome


# --------------------------------------------------------------------------- plain tables


@dataclass(frozen=True)
class PlainTarget:
    schema: str
    name: str
    oid: int
    policy: PlainTablePolicy

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def resolve_plain(conn: Conn, tables: dict[str, PlainTablePolicy]) -> list[PlainTarget]:
    out: list[PlainTarget] = []
    for name, policy in tables.items():
        row = conn.execute(
            load_sql("queries/retention/plain_table.sql"),
            {"schema": policy.namespace, "table": name, "column": policy.column},
        ).fetchone()
        label = f"retention policy: table {policy.namespace}.{name}"
        if row is None:
            raise ConfigError(f"{label} does not exist")
        oid, relkind, column_type = row
        if relkind != "r":
            raise ConfigError(f"{label} is not a plain table (partitioned tables expire by partition)")
        if column_type is None:
            raise ConfigError(f"{label} has no column {policy.column}")
        if column_type not in KEY_TYPES:
            raise ConfigError(f"{label}: column {policy.column} is {column_type}, not a date/time")
        out.append(PlainTarget(policy.namespace, name, int(oid), policy))
    return out


def purge_plain(
    conn: Conn,
    target: PlainTarget,
    *,
    now: datetime,
    deadline: float,
    retry: DdlRetry,
    dry_run: bool = False,
    log: Any = None,
) -> TableOutcome:
    """Batched DELETE of rows older than the retention; one transaction per batch, until ``deadline``."""
    log = (log or get_logger(job=JOB)).bind(table=f"{target.schema}.{target.name}")
    cutoff = subtract_age(now, target.policy.retention)
    col = sql.Identifier(target.policy.column)
    expired_q = sql.SQL("SELECT count(*) FROM {t} WHERE {c} < {cut}").format(
        t=target.ident, c=col, cut=sql.Literal(cutoff)
    )
    row = conn.execute(expired_q).fetchone()
    before = int(row[0]) if row else 0
    outcome = TableOutcome(target.name, target.schema, "plain", dry_run, rows_remaining=before)
    if dry_run or before == 0:
        if dry_run:
            log.info("would delete rows", rows=before, older_than=cutoff.isoformat())
        outcome.rows_removed = before if dry_run else 0
        return outcome
    size = conn.execute(load_sql("queries/retention/table_size.sql"), {"oid": target.oid}).fetchone()
    assert size is not None
    table_bytes, estimated_rows = int(size[0]), int(size[1])
    if estimated_rows <= 0:  # never analyzed: count once (such tables are small)
        estimated_rows = _count(conn, target.ident)
    bytes_per_row = table_bytes / estimated_rows if estimated_rows > 0 else 0.0
    batch = sql.SQL(
        "WITH doomed AS (SELECT ctid FROM {t} WHERE {c} < {cut} LIMIT {n} FOR UPDATE SKIP LOCKED),"
        " gone AS (DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)) AND {c} < {cut}"
        " RETURNING 1)"
        " SELECT (SELECT count(*) FROM doomed), (SELECT count(*) FROM gone)"
    ).format(t=target.ident, c=col, cut=sql.Literal(cutoff), n=sql.Literal(target.policy.batch_size))

    def one_batch(c: Conn) -> int:
        r = c.execute(batch).fetchone()
        assert r is not None
        selected, deleted = int(r[0]), int(r[1])
        expect_equal(f"batch delete from {target.name}", selected, deleted)
        return deleted

    removed = 0
    while time.monotonic() < deadline:
        n = run_locked(conn, one_batch, retry=retry, what=f"delete batch from {target.name}", log=log)
        if n == 0:
            break
        removed += n
    row = conn.execute(expired_q).fetchone()
    after = int(row[0]) if row else 0
    outcome.rows_removed = removed
    outcome.bytes_removed = int(removed * bytes_per_row)
    outcome.rows_remaining = after
    outcome.complete = after == 0
    if after and time.monotonic() >= deadline:
        log.warning("time budget used up; expired rows remain", rows_removed=removed, rows_remaining=after)
    log.info("rows deleted", rows_removed=removed, rows_before=before, rows_after=after)
    return outcome


# --------------------------------------------------------------------------- metrics, plain run


def measurements(outcome: TableOutcome) -> list[metrics.Measurement]:
    resource = outcome.table if outcome.schema == "public" else f"{outcome.schema}.{outcome.table}"
    meta: dict[str, Any] = {"schema": outcome.schema, "kind": outcome.kind, "complete": outcome.complete}
    if outcome.kind == "plain":
        meta["bytes_estimated"] = True
    else:
        meta["rows_exact"] = all(a.rows_exact for a in outcome.actions)
        meta["partitions"] = [a.partition for a in outcome.actions]
    return [
        metrics.Measurement(name, "table", resource, float(value), unit, meta)
        for name, value, unit in (
            ("retention_rows_removed", outcome.rows_removed, "rows"),
            ("retention_bytes_removed", outcome.bytes_removed, "bytes"),
            ("retention_rows_archived", outcome.rows_archived, "rows"),
            ("retention_bytes_archived", outcome.bytes_archived, "bytes"),
        )
    ]


def dump_dir_for(policy: RetentionPolicy) -> Path:
    if policy.dump_dir is not None:
        return policy.dump_dir
    return settings.load_settings().state_dir / "archive"


def retention_targets(conn: Conn, policy: settings.Policy) -> tuple[list[Target], list[PlainTarget]]:
    """Validate every table of both policies against the catalog (ConfigError, nothing changed)."""
    tables = {n: t for n, t in policy.partitions.enabled_tables().items() if t.retention is not None}
    return resolve_targets(conn, tables, what="retention"), resolve_plain(
        conn, policy.retention.enabled_plain()
    )


def run_once(
    conn: Conn, policy: settings.Policy, *, dry_run: bool = False, now: datetime | None = None
) -> list[TableOutcome] | None:
    """The whole job without Prefect (advisory lock, every table, metrics). None: another run holds it."""
    log = get_logger(job=JOB)
    parts, plain = retention_targets(conn, policy)
    with locks.job_lock(conn, JOB) as got:
        if not got:
            log.warning("another retention run holds the lock; exiting")
            return None
        now = now or clock.db_now(conn)
        rp = policy.retention
        out = [
            expire_partitions(conn, t, rp, now=now, dump_dir=dump_dir_for(rp), dry_run=dry_run, log=log)
            for t in parts
        ]
        deadline = time.monotonic() + rp.max_seconds
        out += [
            purge_plain(conn, t, now=now, deadline=deadline, retry=rp, dry_run=dry_run, log=log)
            for t in plain
        ]
        if not dry_run:
            rows = [m for o in out for m in measurements(o)]
            metrics.record(conn, rows, measured_at=now, flow_run_id=None, operation_id=None)
    return out


# --------------------------------------------------------------------------- Prefect


def _record(outcome: TableOutcome, measured_at: datetime, operation_id: UUID) -> None:
    with runtime.connection() as conn:
        metrics.record(
            conn,
            measurements(outcome),
            measured_at=measured_at,
            flow_run_id=runtime.current_flow_run_id(),
            operation_id=operation_id,
        )


@runtime.db_task("retention-partitioned", JOB, retries=1)
def partitioned_task(table: str, measured_at: datetime, operation_id: UUID, dry_run: bool) -> dict[str, Any]:
    policy = settings.current_policy()
    log = get_logger(job=JOB)
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=runtime.current_flow_run_id()),
        runtime.connection() as conn,
    ):
        (target,) = resolve_targets(conn, {table: policy.partitions.tables[table]}, what="retention")
        outcome = expire_partitions(
            conn,
            target,
            policy.retention,
            now=measured_at,
            dump_dir=dump_dir_for(policy.retention),
            dry_run=dry_run,
            log=log,
        )
    if not dry_run:
        _record(outcome, measured_at, operation_id)
    return outcome.summary()


@runtime.db_task("retention-plain", JOB, retries=1)
def plain_task(
    table: str, measured_at: datetime, deadline_epoch: float, operation_id: UUID, dry_run: bool
) -> dict[str, Any]:
    policy = settings.current_policy()
    log = get_logger(job=JOB)
    deadline = time.monotonic() + max(0.0, deadline_epoch - time.time())
    with (
        structlog.contextvars.bound_contextvars(table=table, run_id=runtime.current_flow_run_id()),
        runtime.connection() as conn,
    ):
        (target,) = resolve_plain(conn, {table: policy.retention.plain[table]})
        outcome = purge_plain(
            conn, target, now=measured_at, deadline=deadline, retry=policy.retention, dry_run=dry_run, log=log
        )
    if not dry_run:
        _record(outcome, measured_at, operation_id)
    return outcome.summary()


def _validate() -> None:
    """Every policy table checked against the catalog before the lock or the ledger is touched."""
    with runtime.connection() as conn:
        retention_targets(conn, settings.current_policy())


def retention_run(run: lifecycle.Run, dry_run: bool) -> Outcome:
    """The job's work inside the lifecycle: one task per table, the partitioned ones first."""
    policy = run.policy
    with runtime.connection() as conn:
        parts, plain = retention_targets(conn, policy)
    measured_at = run.started_at
    deadline_epoch = time.time() + policy.retention.max_seconds
    retries = policy.retention.task_retries
    names = [t.name for t in parts]
    results, failures = runtime.run_each(
        partitioned_task, JOB, names, measured_at, run.operation_id, dry_run, retries=retries
    )
    plain_results, plain_failures = runtime.run_each(
        plain_task,
        JOB,
        [p.name for p in plain],
        measured_at,
        deadline_epoch,
        run.operation_id,
        dry_run,
        retries=retries,
    )
    results.update(plain_results)
    failures.update(plain_failures)
    run.counts.update(
        {
            "dry_run": dry_run,
            "partitions_expired": sum(len(r["actions"]) for r in results.values()),
            "rows_removed": sum(r["rows_removed"] for r in results.values()),
            "bytes_removed": sum(r["bytes_removed"] for r in results.values()),
            "rows_archived": sum(r["rows_archived"] for r in results.values()),
            "bytes_archived": sum(r["bytes_archived"] for r in results.values()),
            "rows_remaining": sum(r["rows_remaining"] for r in results.values() if r["kind"] == "plain"),
            "failed_tables": sorted(failures),
        }
    )
    raise_worst(JOB, failures)
    get_logger(job=JOB).info(
        "retention done", **{k: v for k, v in run.counts.items() if k != "failed_tables"}
    )
    counts = run.counts
    message = f"{counts['partitions_expired']} partition(s) expired, {counts['rows_removed']} rows removed"
    result = {"operation_id": str(run.operation_id), **counts, "tables_detail": results}
    return Done(result=result, message=message)


@flow(name="retention", log_prints=False)
def retention_flow(dry_run: DryRun = False) -> State[Any]:
    """Expire partitions per policy and batch-delete old rows of plain tables.

    Args:
        dry_run: Report what would change; change nothing.
    """
    return lifecycle.run_flow(
        JOB, lambda run: retention_run(run, dry_run), params={"dry_run": dry_run}, validate=_validate
    )
