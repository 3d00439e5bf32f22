"""``pgtender automations apply``: the Prefect automations pgtender relies on, created or updated
against the Prefect API (``PREFECT_API_URL``); ``pgtender serve`` and ``up`` apply them too."""

from __future__ import annotations

import os

import typer

from flows.core.errors import ConfigError, InfrastructureError

automations_app = typer.Typer(
    help="Prefect automations pgtender relies on.", no_args_is_help=True, rich_markup_mode=None
)


def apply_automations(echo: bool = True) -> None:
    """Create or update pgtender's automations (idempotent); one line each."""
    import httpx  # noqa: PLC0415
    from prefect.exceptions import PrefectException  # noqa: PLC0415

    from flows.edge import automations  # noqa: PLC0415

    try:
        done = automations.apply_now()
    except (httpx.HTTPError, PrefectException, OSError) as exc:
        raise InfrastructureError(f"could not apply the automations: {' '.join(str(exc).split())}") from None
    for applied in done:
        if echo:
            typer.echo(f"automation {applied.name!r}: {applied.action}")


@automations_app.command("apply")
def apply() -> None:
    """Crash flow runs whose heartbeats stopped (a lost worker), so their concurrency slot is
    released and the next run starts (idempotent: an identical automation is left alone)."""
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

        if not PREFECT_API_URL.value():
            raise ConfigError("pgtender automations apply needs a Prefect API: set PREFECT_API_URL")
    apply_automations()
