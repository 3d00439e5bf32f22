"""What ``migrate`` / ``rollback`` print about data they would drop, the ``--drop-data`` dump, and
``restore-dump`` (a dump back into its table)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import psycopg
import typer

from flows.core import db, migrations
from flows.core.archives import restore
from flows.core.archives.manifest import read_manifest
from flows.core.archives.store import locate, open_store, policy_store
from flows.core.drop_permit import DropData
from flows.core.fleet.targets import Target
from flows.core.policy import settings
from flows.edge.fleet_cli import each_target

Conn = psycopg.Connection[tuple[Any, ...]]
Echo = Callable[[str], None]


def _print_steps(steps: list[migrations.Step], *, dry_run: bool) -> None:
    if not steps:
        typer.echo("nothing to do: the database is at the requested version")
        return
    verb = "would run" if dry_run else "ran"
    for step in steps:
        m = step.migration
        typer.echo(f"{verb} {step.direction:>4} {m.version:04d} {m.name}")


def migrate_to(
    conn: Conn, target: Target, to: int | None, *, dry_run: bool, drop: bool, down_only: bool
) -> None:
    """``migrate`` / ``rollback`` on one target: the plan (a dry run lists what down steps drop),
    or the steps run, after the dump when --drop-data was given."""
    drop_data = drop_data_here(target, "rollback") if drop and not dry_run else None
    if down_only and to is not None:
        steps = migrations.rollback(conn, to, dry_run=dry_run, drop_data=drop_data)
    else:
        steps = migrations.migrate(conn, to, dry_run=dry_run, drop_data=drop_data)
    if dry_run:
        print_plan(conn, steps, typer.echo)
        return
    if drop_data is not None:
        print_dump(drop_data, typer.echo)
    _print_steps(steps, dry_run=False)


def drop_data_here(target: Target, reason: str) -> DropData:
    """Consent to drop tables with rows, dumping them into the target's ``[retention] dump_dir``."""
    current = settings.load_settings()
    retention = target.policy.retention
    return DropData(
        store=policy_store(retention.dump_dir, retention.storage, target.state_dir(current.state_dir)),
        reason=reason,
    )


def print_plan(conn: Conn, steps: list[migrations.Step], echo: Echo) -> None:
    """A dry run: each step, and for a down step every table and partition it drops with its rows."""
    if not steps:
        echo("nothing to do: the database is at the requested version")
        return
    judged = {loss.version: loss for loss in migrations.losses(conn, steps)}
    for step in steps:
        m = step.migration
        echo(f"would run {step.direction:>4} {m.version:04d} {m.name}")
        loss = judged.get(m.version)
        if loss is None:
            continue
        for rel, rows, partitions in loss.tables():
            inside = f" in {partitions} partitions" if partitions else ""
            echo(f"    drops {rel.label}: {rows} rows{inside}")
        for d in loss.dropped:
            if d.relation.kind == "m" and d.existed:
                echo(f"    drops materialized view {d.relation.label}: {d.rows} rows (derived; not dumped)")
        for rel, rows in loss.lost:
            echo(f"    deletes {rows} rows from {rel.label}, which stays")
    total = sum(loss.rows for loss in judged.values())
    if total:
        echo(f"would drop {total} rows: refused without --drop-data (which dumps them first)")


def print_dump(drop_data: DropData, echo: Echo) -> None:
    if not drop_data.dumped:
        return
    rows = sum(d.rows for d in drop_data.dumped)
    echo(f"dumped {len(drop_data.dumped)} table(s), {rows} rows, verified, to {drop_data.location}")
    for d in drop_data.dumped:
        echo(f"    {d.table.schema}.{d.table.name}: {d.rows} rows -> {d.manifest}")


def restore_dump(
    conn: Conn, manifest: str, *, schema: str | None, table: str | None, storage: Any
) -> list[tuple[str, int]]:
    """Load a dump (retention's or a guarded rollback's) back, into its own table unless told
    otherwise; a folder (what rollback --drop-data printed): every table in it, referenced first."""
    if not manifest.endswith(".json"):
        return restore.restore_folder(conn, open_store(manifest, storage))
    store, name = locate(manifest, storage)
    found = read_manifest(store, name)
    schema = schema or str(found.get("schema") or "public")
    table = table or str(found.get("table") or found.get("parent") or "")
    return [(f"{schema}.{table}", restore.restore_dump(conn, store, name, schema=schema, table=table))]


def restore_command(
    manifest: Annotated[
        str,
        typer.Argument(help="A dump's manifest (.json) or a folder of dumps (a path or a URL)."),
    ],
    table: Annotated[str | None, typer.Option(help="Load into this table (default: the dump's own).")] = None,
    schema: Annotated[str | None, typer.Option(help="Its schema (default: the dump's own).")] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="The database of the fleet to load into.")
    ] = None,
) -> None:
    """Load a verified dump (dump-mode retention's, or rollback --drop-data's) back into its table."""
    for t in each_target(target, typer.echo, one="a dump goes back into one database"):
        conn = db.connect(
            t.dsn, policy=t.policy.database, application_name="pgtender-cli", autocommit=True, name=t.name
        )
        with conn:
            storage = t.policy.retention.storage
            for where, rows in restore_dump(conn, manifest, schema=schema, table=table, storage=storage):
                typer.echo(f"restored {rows} rows into {where}")
