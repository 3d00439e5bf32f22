"""The ``pgtender`` command line (typer). Exit codes: 0 done, 1 problems, 2 bad input, 3 infra."""

from __future__ import annotations

import contextlib
import fcntl
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from flows.core import db, migrations
from flows.core.engine import Verdict
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.fleet.targets import Target
from flows.core.logs import configure_logging, get_logger
from flows.core.masking import mask_secrets
from flows.core.policy import settings
from flows.core.telemetry import disable_telemetry
from flows.edge import migrate_cli
from flows.edge.alerts_cli import alerts_app
from flows.edge.automations_cli import apply_automations, automations_app
from flows.edge.cron_cli import cron_app
from flows.edge.fleet_cli import connect_to, each_target, for_each_target
from flows.edge.run_cli import run_app

app = typer.Typer(
    name="pgtender",
    help="Scheduled maintenance and data-quality orchestrator for PostgreSQL (Prefect 3 + GX).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts shown as written: `[retention] dump_dir` is not markup
)


@app.callback()
def _entry(
    ctx: typer.Context,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--log-console", help="Log format (default: JSON off a TTY).")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="DEBUG, INFO, WARNING or ERROR (default: INFO; WARNING on a terminal for run and backfill)."
        ),
    ] = None,
) -> None:
    disable_telemetry()
    json_logs = log_json if log_json is not None else not sys.stderr.isatty()
    if json_logs:  # Prefect's own lines (flow and task runs, the runner) as JSON too, like pgtender's
        import os  # noqa: PLC0415

        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER", "json")
    if log_level is None:
        # A command run at a terminal prints its outcome once: the log says only what needs attention.
        quiet = sys.stderr.isatty() and ctx.invoked_subcommand in {"run", "backfill"}
        log_level = "WARNING" if quiet else "INFO"
        if quiet:
            import os  # noqa: PLC0415

            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # no Prefect chatter either
    configure_logging(json=json_logs, level=log_level.upper())
    _prefect_home()
    if ctx.invoked_subcommand in _TALKS_TO_PREFECT:
        from flows.edge.dispatch import env_api_url  # noqa: PLC0415

        env_api_url()  # a malformed PREFECT_API_URL: one line, exit 2, before Prefect's traceback


# The commands that reach a Prefect API (PREFECT_API_URL when set).
# (run and backfill check it where they look for the server: their line names the job.)
_TALKS_TO_PREFECT = frozenset({"serve", "up", "alerts"})


def _prefect_home() -> None:
    """Prefect's home (its profile, a local database, result storage) under pgtender's state
    directory, never ~/.prefect; nothing persisted unless something reads it."""
    import os  # noqa: PLC0415

    try:
        state_dir = settings.load_settings().state_dir
    except ConfigError:
        return  # reported by the command that needs the settings
    home = Path(os.environ.setdefault("PREFECT_HOME", str(state_dir / "prefect")))
    with contextlib.suppress(OSError):  # an unwritable state dir is reported where it is used
        home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")


DropDataOption = Annotated[
    bool,
    typer.Option(
        "--drop-data",
        help="Down steps may drop tables holding rows: dump them (verified) to [retention] dump_dir first.",
    ),
]


@app.command()
def migrate(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    to: Annotated[int | None, typer.Option("--to", help="Target version (default: newest).")] = None,
    drop_data: DropDataOption = False,
    target: Annotated[
        str | None, typer.Option("--target", help="One database of the fleet (default: every target).")
    ] = None,
) -> None:
    """Apply migrations (each step in its own transaction), on each target of the fleet (a target
    that fails is said and the others go on; the exit code is the worst). Going down (--to below
    the current version) is guarded like rollback."""

    def one(t: Target) -> None:
        with connect_to(t) as conn:
            migrate_cli.migrate_to(conn, t, to, dry_run=dry_run, drop=drop_data, down_only=False)

    for_each_target(target, typer.echo, one)


@app.command()
def rollback(
    to: Annotated[int, typer.Option("--to", help="Version to return to (0 undoes every step).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print each step and the tables and rows it would drop.")
    ] = False,
    drop_data: DropDataOption = False,
    target: Annotated[
        str | None, typer.Option("--target", help="One database of the fleet (default: every target).")
    ] = None,
) -> None:
    """Run down steps in reverse until the database is at version --to. Refused (exit 2, nothing
    changed) when they would drop tables holding rows, unless --drop-data."""
    for t in each_target(target, typer.echo, one="rollback undoes one database's schema"):
        with connect_to(t) as conn:
            migrate_cli.migrate_to(conn, t, to, dry_run=dry_run, drop=drop_data, down_only=True)


app.command("restore-dump")(migrate_cli.restore_command)


@app.command()
def status(
    target: Annotated[
        str | None, typer.Option("--target", help="One database of the fleet (default: every target).")
    ] = None,
) -> None:
    """Show applied and pending migrations."""
    changed = False
    for t in each_target(target, typer.echo):
        with connect_to(t) as conn:
            rows = migrations.status(conn)
        for row in rows:
            when = row.applied_at.isoformat(timespec="seconds") if row.applied_at else "-"
            typer.echo(f"{row.version:04d}  {row.state:<8} {when:<26} {row.name}")
        applied = [r for r in rows if r.state == "applied"]
        typer.echo(f"version {applied[-1].version if applied else 0} of {len(rows)}")
        changed = changed or any(r.state == "changed" for r in rows)
    if changed:
        raise ConfigError("an applied migration file has changed since it was applied")


@app.command("targets")
def targets_command() -> None:
    """The databases pgtender tends: reachable, primary or replica, migrated (never their URLs)."""
    from flows.edge.fleet_cli import targets_table  # noqa: PLC0415

    targets_table(typer.echo)


@app.command("demo-data")
def demo_data(
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days of history.")] = 14,
    rows_per_day: Annotated[int, typer.Option(min=1, max=50_000_000, help="Learning events a day.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    target: Annotated[
        str | None, typer.Option("--target", help="One database of the fleet (default: every target).")
    ] = None,
) -> None:
    """Load realistic synthetic data (with DEFAULT-partition rows and planted defects)."""
    from flows.demo_data import load_demo_data  # noqa: PLC0415 - only this command needs it

    def one(t: Target) -> None:
        with connect_to(t) as conn:
            counts = load_demo_data(conn, days=days, rows_per_day=rows_per_day, seed=seed)
        for table, n in sorted(counts.items()):
            typer.echo(f"{table:<36} {n:>10}")

    for_each_target(target, typer.echo, one)


@contextlib.contextmanager
def _single_instance(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / "up.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"pgtender up is already running for {state_dir}") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _interrupt(_signum: int, _frame: Any) -> None:
    """SIGTERM before serving starts (the runner has its own once it serves): like Ctrl-C."""
    raise KeyboardInterrupt


@app.command()
def up(
    once: Annotated[bool, typer.Option("--once", help="Prepare and run the first job, then exit.")] = False,
    demo_days: Annotated[int, typer.Option(help="Days of demo data for an empty database.")] = 14,
) -> None:
    """The main job: database (embedded if none), migrations, demo data, Prefect server, first run."""
    from flows.edge.up import bring_up  # noqa: PLC0415

    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops everything `up` started, like Ctrl-C
    current = settings.load_settings()
    with _single_instance(current.state_dir):
        bring_up(current, once=once, demo_days=demo_days)


@app.command()
def serve(
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many flow runs at once (default: no limit).")
    ] = None,
    guard_only: Annotated[
        bool,
        typer.Option(
            "--guard-only",
            help="Only apply the late-run rule every minute (for work pools: the workers run the flows).",
        ),
    ] = False,
) -> None:
    """Serve every deployment on its schedule against an existing Prefect API (PREFECT_API_URL)."""
    import os  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from flows.edge import serving  # noqa: PLC0415

    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

        if not PREFECT_API_URL.value():
            raise ConfigError("pgtender serve needs a Prefect API: set PREFECT_API_URL (or use pgtender up)")
    if guard_only:
        ids = serving.deployment_ids()
        if not ids:
            raise ConfigError("no pgtender deployments registered: run `prefect deploy --all` first")
        apply_automations()  # a lost worker's run is Crashed (deployments/README.md)
        typer.echo(f"late-run guard for {', '.join(sorted(ids))} (Ctrl-C stops)")
        serving.collapse_late_runs_now(ids)
        serving.guard_late_runs(ids, threading.Event())
        return
    if settings.current_policy().alerts.channels:
        from flows.edge.alerts_cli import apply_channels  # noqa: PLC0415

        apply_channels()
    typer.echo("serving every deployment on its schedule (Ctrl-C stops)")
    signal.signal(signal.SIGTERM, _interrupt)  # while the deployments register, like `up`
    serving.serve_all(limit=limit)


@app.command()
def backfill(  # noqa: PLR0917 - typer options
    start: Annotated[str, typer.Option("--start", help="First UTC day (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--end", help="Last UTC day (YYYY-MM-DD), included.")],
    jobs: Annotated[
        str | None, typer.Option("--jobs", help="Comma-separated: quality,capacity,views,partitions.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Exceed backfill.max_days; redo days already done.")
    ] = False,
    deployment: Annotated[
        bool,
        typer.Option(
            "--deployment",
            help=(
                "Only trigger a run of the backfill deployment (--deployment-name) and return;"
                " --watch follows it. Without it the backfill runs through that deployment too when"
                " a server is running (followed here to its end), and here when none is."
            ),
        ),
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="With --deployment: follow the run to its end.")
    ] = False,
    deployment_name: Annotated[str, typer.Option(help="The deployment to trigger.")] = "backfill/backfill",
    target: Annotated[
        str | None, typer.Option("--target", help="One database of the fleet (default: every target).")
    ] = None,
) -> None:
    """Re-run quality/capacity (and partitions, views) day by day over a range (resumable): through
    the running server when there is one, else here with a progress bar."""
    from flows.edge import backfill_cli  # noqa: PLC0415

    values = backfill_cli.values_of(start, end, jobs, force, target)
    if deployment:
        verdict = backfill_cli.trigger(values, name=deployment_name, watch=watch, echo=typer.echo)
    else:
        verdict = backfill_cli.run(values, typer.echo)
    _finish("backfill", verdict)


def _finish(job: str, verdict: Verdict) -> None:
    """A command's outcome: one line, its exit code."""
    typer.echo(verdict.text(job), err=verdict.exit_code != 0)
    raise typer.Exit(verdict.exit_code)


app.add_typer(run_app, name="run")
app.add_typer(alerts_app, name="alerts")
app.add_typer(automations_app, name="automations")
app.add_typer(cron_app, name="cron")


def main(argv: list[str] | None = None) -> None:
    log = get_logger()
    try:
        code = app(args=argv, standalone_mode=False)  # a command's typer.Exit comes back as its code
        if isinstance(code, int) and code:
            sys.exit(code)
    except PgtenderError as exc:
        typer.echo(f"pgtender: {exc}", err=True)
        sys.exit(exc.exit_code)
    except psycopg.Error as exc:
        refused = db.refused(exc)
        if refused is not None:  # a role without a privilege: bad input, exit 2
            typer.echo(f"pgtender: {refused}", err=True)
            sys.exit(refused.exit_code)
        message = mask_secrets(" ".join(str(exc).split()))
        typer.echo(f"pgtender: database error: {message}", err=True)
        sys.exit(InfrastructureError.exit_code)
    except KeyboardInterrupt:
        log.info("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"pgtender: {exc}", err=True)
        sys.exit(2)
    finally:
        db.close_pools()


if __name__ == "__main__":
    main()
