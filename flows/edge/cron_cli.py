"""``pgtender cron analyze|migrate``: take over the pg_cron jobs pgtender replaces."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.core.fleet.targets import Target
from flows.edge.fleet_cli import connect_to, each_target

cron_app = typer.Typer(help="Take over pg_cron jobs.", no_args_is_help=True, rich_markup_mode=None)

TargetOption = Annotated[
    str | None, typer.Option("--target", help="One database of the fleet (default: every target).")
]


def _crons(target: Target) -> dict[str, str]:
    """Each job's schedule in this target's policy, as pg_cron's jobs are compared with it."""
    from flows.registry import REGISTRY  # noqa: PLC0415

    return {job: f"{s.cron} {s.timezone}" for job, s in REGISTRY.schedules(target.policy).items()}


@cron_app.command("analyze")
def cron_analyze(target: TargetOption = None) -> None:
    """pg_cron's jobs, the pgtender job that replaces each, schedules, last runs and failures."""
    from flows import cron  # noqa: PLC0415

    for t in each_target(target, typer.echo):
        with connect_to(t) as conn:
            typer.echo(cron.analysis_text(cron.analyze(conn, dsn=t.dsn, schedules=_crons(t))))


@cron_app.command("migrate")
def cron_migrate(
    execute: Annotated[
        bool, typer.Option("--execute/--dry-run", help="Unschedule the replaced jobs (default: dry run).")
    ] = False,
    target: TargetOption = None,
) -> None:
    """Unschedule the pg_cron jobs pgtender replaces (ledger-recorded; prints how to restore them)."""
    from flows import cron  # noqa: PLC0415

    for t in each_target(target, typer.echo):
        with connect_to(t) as conn:
            typer.echo(
                cron.migration_text(cron.migrate(conn, dsn=t.dsn, schedules=_crons(t), execute=execute))
            )
