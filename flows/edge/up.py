"""``pgtender up``: everything a new user needs, started in order and stopped in reverse."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import typer
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.core import db, migrations
from flows.core.engine import verdicts
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.edge.embedded import embedded_dsn, stop_embedded


def _is_empty(conn: Any) -> bool:
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM learning_events)").fetchone()
    return bool(row and row[0])


def _flush_prefect_logs() -> None:
    from prefect.logging.handlers import APILogWorker  # noqa: PLC0415

    APILogWorker.drain_all(timeout=5)


def _stopped(what: str, stop: Callable[..., object], *args: object) -> None:
    """Stop one thing `up` started and say so (Ctrl-C and SIGTERM print what they stopped)."""
    stop(*args)
    typer.echo(f"stopped {what}")


def bring_up(current: settings.Settings, *, once: bool, demo_days: int) -> None:
    log = get_logger(command="up")
    policy = settings.current_policy(current)
    with contextlib.ExitStack() as stack:
        dsn = settings.dsn(current, embedded=embedded_dsn)  # starts the embedded server when no URL is set
        if current.database_url is None:
            stack.callback(_stopped, "embedded PostgreSQL", stop_embedded, current.state_dir)
            typer.echo(f"database: embedded PostgreSQL under {current.state_dir / 'postgres'}")
        else:
            typer.echo("database: target 'default' (PGTENDER_DATABASE_URL)")  # named, never located
        _prepare_databases(dsn, policy, demo_days=demo_days)
        api_url, ui_url = _prefect_api(stack, current, dsn)
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        # `pgtender run | backfill` beside this process submit their runs here (flows/edge/dispatch.py)
        from flows.edge.dispatch import forget_api, record_api  # noqa: PLC0415

        record_api(current.state_dir, api_url)
        stack.callback(forget_api, current.state_dir)
        stack.callback(_flush_prefect_logs)  # before the server stops: no "Error logging to API"
        typer.echo(f"prefect UI: {ui_url}")
        if policy.alerts.channels:  # the channels' blocks, visible in the UI (pgtender alerts apply)
            from flows.edge.alerts_cli import apply_channels  # noqa: PLC0415

            apply_channels()

        from flows.edge.flows import flow_for  # noqa: PLC0415
        from flows.registry import REGISTRY  # noqa: PLC0415

        state = flow_for(REGISTRY.get("capacity"))(return_state=True)
        typer.echo(verdicts.from_state(state).text("capacity"))
        log.info("first run complete", state=state.name, message=state.message)
        if once:
            return
        from flows.edge.serving import serve_all  # noqa: PLC0415

        typer.echo(f"serving every deployment on its schedule; open {ui_url} (Ctrl-C stops)")
        stack.callback(typer.echo, "stopped serving the deployments")
        serve_all()


def _prepare_databases(dsn: str, policy: settings.Policy, *, demo_days: int) -> None:
    """The database migrated (demo data when it has none), and every target of [targets] migrated."""
    with db.connect(
        dsn, policy=policy.database, application_name="pgtender-up", autocommit=True, name="default"
    ) as conn:
        steps = migrations.migrate(conn)
        typer.echo(
            f"migrations: {len(steps)} applied, database at version {migrations.discover()[-1].version}"
        )
        if _is_empty(conn):
            from flows.demo_data import load_demo_data  # noqa: PLC0415

            counts = load_demo_data(conn, days=demo_days, rows_per_day=2000)
            typer.echo(f"demo data: {sum(counts.values())} rows in {len(counts)} tables")
    from flows.edge.fleet_cli import migrate_fleet  # noqa: PLC0415

    migrate_fleet(typer.echo)  # with [targets]: every target migrated too (no demo data there)


def _prefect_api(stack: contextlib.ExitStack, current: settings.Settings, dsn: str) -> tuple[str, str]:
    """The Prefect API and UI URLs: PREFECT_API_URL's, else a local server's (its store in this
    PostgreSQL; stopped when ``stack`` closes)."""
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url:
        return api_url, api_url.removesuffix("/api")
    from flows.edge import prefect_store  # noqa: PLC0415
    from flows.edge.prefect_server import start_local_server  # noqa: PLC0415

    store = prefect_store.prepare(dsn)  # Prefect's state in this PostgreSQL, not SQLite
    typer.echo(f"prefect: starting a local server (its store: {store.description}) ...")
    server = start_local_server(current.state_dir, database_url=store.url)
    stack.callback(_stopped, f"the local Prefect server ({server.ui_url})", server.stop)
    return server.api_url, server.ui_url
