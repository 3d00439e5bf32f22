"""Alert channels: sending a notice, and the Prefect blocks ``pgtender alerts apply`` keeps.

- ``webhook``: pgtender POSTs the notice as JSON (``Notice.payload``) to the URL.
- ``slack`` / ``teams``: Prefect's notification blocks (``SlackWebhook``, ``MicrosoftTeamsWebhook``)
  send the title and the text.
- ``pagerduty``: pgtender sends PagerDuty Events API v2 events itself with the routing key (from
  the environment or the ``PagerDutyWebHook`` block): a page is a ``trigger`` and a resolve a
  ``resolve`` under the same ``dedup_key`` (one incident per target, check and subject), which
  Prefect's block cannot do (it only triggers: a resolve would open a second incident).
- ``email``: the report's SMTP server (``PGTENDER_SMTP_*``), plain text.

Secrets come from the environment (``url_env``, ``integration_key_env``/``api_key_env``) or from a
Prefect block (``block``). Each secret is registered with the masking filter before it is used, so
an error that quotes a URL reaches logs masked; the notice itself never carries one.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal

from flows.alerts.notices import Notice
from flows.core import masking, smtp
from flows.core.errors import ConfigError, PgtenderError
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.core.policy.alerts import Channel, resolve_secret


class DeliveryFailed(Exception):
    """One channel did not accept a notice (the message is masked, one line)."""


def _secret(channel: Channel, env: str | None) -> str:
    value = resolve_secret(channel, env)
    masking.register_secret(value)
    return value


def _one_line(exc: BaseException) -> str:
    return masking.mask_secrets(" ".join(str(exc).split()) or type(exc).__name__)


# --- blocks ---------------------------------------------------------------------------------------


def block_from_env(channel: Channel) -> Any:
    """The Prefect block a channel's environment describes (not saved; ``apply`` saves it)."""
    from prefect.blocks.notifications import (  # noqa: PLC0415
        CustomWebhookNotificationBlock,
        MicrosoftTeamsWebhook,
        PagerDutyWebHook,
        SlackWebhook,
    )
    from prefect.types import SecretDict  # noqa: PLC0415 - Prefect only when a channel is used
    from pydantic import SecretStr  # noqa: PLC0415

    if channel.type == "webhook":
        # the URL is a secret: substituted from `secrets`, never stored as the block's plain `url`
        return CustomWebhookNotificationBlock(
            name=channel.name,
            url="{{url}}",
            json_data={"title": "{{subject}}", "text": "{{body}}"},
            secrets=SecretDict({"url": _secret(channel, channel.url_env)}),
            headers=None,
            cookies=None,
            timeout=channel.timeout_seconds,
            allow_private_urls=True,  # in-house receivers are often on private addresses
        )
    if channel.type == "slack":
        return SlackWebhook(url=SecretStr(_secret(channel, channel.url_env)), allow_private_urls=True)
    if channel.type == "teams":
        url = SecretStr(_secret(channel, channel.url_env))
        return MicrosoftTeamsWebhook(url=url, allow_private_urls=True)
    if channel.type == "pagerduty":
        return PagerDutyWebHook(
            integration_key=SecretStr(_secret(channel, channel.integration_key_env)),
            api_key=SecretStr(_secret(channel, channel.api_key_env)),
            source="pgtender",
            component="database",
        )
    raise ConfigError(f"alerts channel {channel.name!r}: an {channel.type} channel has no Prefect block")


def _block_classes(channel: Channel) -> list[Any]:
    from prefect.blocks import notifications as n  # noqa: PLC0415
    from prefect.blocks.system import Secret  # noqa: PLC0415

    classes: dict[str, list[Any]] = {
        "webhook": [n.CustomWebhookNotificationBlock, Secret],
        "slack": [n.SlackWebhook],
        "teams": [n.MicrosoftTeamsWebhook],
        "pagerduty": [n.PagerDutyWebHook],
    }
    return classes.get(channel.type, [])


def find_block(channel: Channel) -> Any | None:
    """The channel's saved Prefect block (of its type), None when there is none."""
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    for cls in _block_classes(channel):
        try:
            return cls.load(channel.block_name)
        except (ObjectNotFound, ValueError):
            continue
    return None


def load_block(channel: Channel) -> Any:
    """The named Prefect block of a channel (``block = "..."``), or a one-line ConfigError."""
    block = find_block(channel)
    if block is None:
        raise ConfigError(
            f"alerts channel {channel.name!r}: no {channel.type} Prefect block named {channel.block_name!r}"
        )
    for name in ("url", "integration_key", "api_key", "value"):
        secret = getattr(block, name, None)
        if secret is not None and hasattr(secret, "get_secret_value"):
            value = secret.get_secret_value()
            if isinstance(value, str):
                masking.register_secret(value)
    return block


def _channel_block(channel: Channel) -> Any:
    return load_block(channel) if channel.block else block_from_env(channel)


# --- sending --------------------------------------------------------------------------------------


def _webhook_url(channel: Channel) -> str:
    if channel.url_env:
        return _secret(channel, channel.url_env)
    block = load_block(channel)
    if hasattr(block, "_build_request_args"):  # a Custom Webhook block: its (substituted) URL
        url = str(block._build_request_args("", None)["url"])
    elif hasattr(block, "get"):  # a Secret block holding the URL
        url = str(block.get())
    else:
        raise ConfigError(
            f"alerts channel {channel.name!r}: block {channel.block_name!r} is neither a Custom Webhook"
            " nor a Secret"
        )
    masking.register_secret(url)
    return url


def send(channel: Channel, notice: Notice, *, from_address: str = "pgtender@localhost") -> None:
    """Deliver one notice on one channel; ``DeliveryFailed`` (masked, one line) when it was not accepted."""
    import httpx  # noqa: PLC0415

    try:
        if channel.type == "webhook":
            url = _webhook_url(channel)
            response = httpx.post(
                url,
                json=notice.payload(),
                timeout=channel.timeout_seconds,
                headers={"user-agent": "pgtender-alerts"},
            )
            response.raise_for_status()
        elif channel.type == "email":
            _send_email(channel, notice, from_address)
        elif channel.type == "pagerduty":
            for event in pagerduty_events(notice, _routing_key(channel)):
                response = httpx.post(channel.events_url, json=event, timeout=channel.timeout_seconds)
                response.raise_for_status()
        else:
            from prefect.blocks.abstract import NotificationError  # noqa: PLC0415

            block = _channel_block(channel)
            try:
                with block.raise_on_failure():
                    block.notify(notice.text(), notice.title)
            except NotificationError as exc:
                raise DeliveryFailed(f"{channel.type} refused the notice: {_one_line(exc)}") from None
    except (httpx.HTTPError, OSError, ValueError, PgtenderError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {_one_line(exc)}") from None


def _routing_key(channel: Channel) -> str:
    if channel.integration_key_env:
        return _secret(channel, channel.integration_key_env)
    key: str = load_block(channel).integration_key.get_secret_value()  # registered with masking
    return key


def pagerduty_events(notice: Notice, routing_key: str) -> list[dict[str, Any]]:
    """The Events API v2 events of a notice: a page triggers the incident of its dedup key, a resolve
    resolves it; a test triggers an informational incident and resolves it at once."""
    if notice.event == "resolve":
        return [{"routing_key": routing_key, "event_action": "resolve", "dedup_key": notice.dedup_key}]
    trigger = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": notice.dedup_key,
        "client": "pgtender",
        "payload": {
            "summary": notice.title[:1024],
            "source": notice.target,
            "severity": "critical" if notice.event == "page" else "info",
            "component": notice.check_name,
            "group": notice.source,
            "class": notice.subject or notice.check_name,
            "custom_details": notice.payload(),
        },
    }
    if notice.event == "test":
        return [
            trigger,
            {"routing_key": routing_key, "event_action": "resolve", "dedup_key": notice.dedup_key},
        ]
    return [trigger]


def _send_email(channel: Channel, notice: Notice, from_address: str) -> None:
    current = settings.load_settings()  # PGTENDER_SMTP_* of this process
    msg = EmailMessage()
    msg["Subject"] = notice.title
    msg["From"] = from_address
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="pgtender")
    msg.set_content(notice.text())
    smtp.send(msg, list(channel.to), current)


def deliver(notice: Notice, channels: list[Channel], *, from_address: str) -> list[str]:
    """Send ``notice`` on every channel; the names of those that accepted it. Failures are logged."""
    log = get_logger(event_kind=notice.event, check=notice.what, target=notice.target)
    accepted: list[str] = []
    for channel in channels:
        try:
            send(channel, notice, from_address=from_address)
        except DeliveryFailed as exc:
            log.warning("alert channel failed", channel=channel.name, type=channel.type, error=str(exc))
            continue
        accepted.append(channel.name)
    return accepted


# --- alerts apply / test --------------------------------------------------------------------------

Action = Literal["created", "updated", "unchanged", "uses block", "no block"]


@dataclass(frozen=True)
class Applied:
    channel: str
    block: str
    action: Action


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "get_secret_value", None)
    return unwrap() if callable(unwrap) else value


def _same(existing: Any, wanted: Any) -> bool:
    """The same block type with the same field values, secrets included."""
    if type(existing) is not type(wanted):
        return False
    return all(
        _plain(getattr(existing, name, None)) == _plain(getattr(wanted, name, None))
        for name in type(wanted).model_fields
    )


def apply(channels: list[Channel]) -> list[Applied]:
    """Create or update the Prefect block of every channel configured from the environment
    (idempotent: an identical block is left alone); check that named blocks exist."""
    out: list[Applied] = []
    for channel in channels:
        if channel.type == "email":
            out.append(Applied(channel.name, "-", "no block"))  # PGTENDER_SMTP_* in the environment
            continue
        if channel.block:
            load_block(channel)
            out.append(Applied(channel.name, channel.block_name, "uses block"))
            continue
        wanted = block_from_env(channel)
        existing = find_block(channel)
        if existing is not None and _same(existing, wanted):
            out.append(Applied(channel.name, channel.block_name, "unchanged"))
            continue
        wanted.save(channel.block_name, overwrite=True)
        out.append(Applied(channel.name, channel.block_name, "created" if existing is None else "updated"))
    return out
