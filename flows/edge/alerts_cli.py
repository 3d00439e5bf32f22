"""``pgtender alerts apply | test | status``: the policy's alert channels as Prefect blocks, a test
notice on each, and the checks failing now."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.core.errors import ConfigError, InfrastructureError
from flows.core.policy import settings
from flows.core.policy.alerts import Channel

# Help texts are Rich markup: a literal "[" takes a backslash (else "[[alerts.channels]]" vanishes).
alerts_app = typer.Typer(
    help=(
        "The alert channels of the policy's [[alerts.channels]]: apply them as Prefect blocks, send"
        " a test notice, list the checks failing now."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # help shown as written (`[[alerts.channels]]` is not markup)
)
NO_CHANNEL = "no alert channel is configured ([[alerts.channels]] in the policy file): nothing can page"


def _channels(only: str | None = None) -> list[Channel]:
    channels = list(settings.current_policy().alerts.channels)
    if not channels:
        raise ConfigError("no alert channels: add [[alerts.channels]] to the policy file (PGTENDER_CONFIG)")
    if only is not None:
        channels = [c for c in channels if c.name == only]
        if not channels:
            raise ConfigError(f"no alert channel named {only!r}")
    return channels


def apply_channels(echo: bool = True) -> None:
    """Create or update the channels' Prefect blocks (idempotent); one line a channel."""
    from flows.alerts import channels  # noqa: PLC0415

    configured = list(settings.current_policy().alerts.channels)
    for applied in channels.apply(configured):
        if echo:
            typer.echo(f"{applied.channel:<20} {applied.block:<28} {applied.action}")


@alerts_app.command("apply")
def apply() -> None:
    """Create or update the Prefect blocks of the policy's channels (secrets from the environment)."""
    _channels()
    apply_channels()


@alerts_app.command("test")
def test(
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
) -> None:
    """Send a test notice on every channel (exit 3 when one did not accept it)."""
    from flows.alerts import alerting, channels  # noqa: PLC0415
    from flows.core import clock  # noqa: PLC0415

    now = clock.now()
    notice = alerting.Notice(
        event="test",
        target="default",
        check_name="pgtender.test",
        subject="",
        source="cli",
        since=now,
        at=now,
        summary="a test notice from `pgtender alerts test`: this channel reaches the on-call engineer",
        runbook=settings.current_policy().alerts.runbook_url,
    )
    failed = []
    for ch in _channels(channel):
        try:
            channels.send(ch, notice, from_address=settings.current_policy().report.from_address)
        except channels.DeliveryFailed as exc:
            failed.append(ch.name)
            typer.echo(f"{ch.name:<20} {ch.type:<10} FAILED: {exc}")
        else:
            typer.echo(f"{ch.name:<20} {ch.type:<10} ok")
    if failed:
        raise InfrastructureError(f"{len(failed)} channel(s) did not accept the test: {', '.join(failed)}")


@alerts_app.command("status")
def status(
    target: Annotated[
        str | None, typer.Option("--target", help="One database of the fleet (default: every target).")
    ] = None,
) -> None:
    """The checks failing now on each target: since when, paged or not, the command to run next."""
    from flows.alerts import alerting  # noqa: PLC0415
    from flows.core import db  # noqa: PLC0415
    from flows.edge.fleet_cli import each_target  # noqa: PLC0415

    rows = []
    for t in each_target(target, lambda _line: None):
        with db.connect(
            t.dsn, policy=t.policy.database, application_name="pgtender-cli", autocommit=True, name=t.name
        ) as conn:
            rows += alerting.open_alerts(conn)
    can_page = bool(settings.current_policy().alerts.channels)
    if not rows:
        typer.echo("no check is failing")
    for r in rows:
        what = f"{r['check_name']}[{r['subject']}]" if r["subject"] else r["check_name"]
        if r["paged_at"]:
            paged = f"paged {r['paged_at'].isoformat(timespec='seconds')}"
        else:
            paged = "not paged yet" if can_page else "not paged (no alert channel)"
        since = r["since"].isoformat(timespec="seconds")
        typer.echo(f"{r['target']}  {what}  failing since {since} ({r['failures']} runs), {paged}")
        if r["next_command"]:
            typer.echo(f"    next: {r['next_command']}")
    if not can_page:
        typer.echo(NO_CHANNEL)
