"""Each channel type one class with its own ``send``, behind a pydantic union keyed on ``type``.

The policy (core) declares the channels' shapes (``flows.core.policy.alerts``: ``WebhookChannel``,
``SlackChannel``, ...); each class here *is* that shape plus how a notice travels on it, and
``sender(channel)`` turns a configured channel into its sender through the discriminated union
``Sender``. Core never learns about HTTP, SMTP or Prefect blocks; a new channel type is a shape in
core and one class here (a test checks that every shape has its sender).

- ``webhook``: the notice as JSON (``Notice.payload``), with ``Idempotency-Key`` = the notice's
  delivery key (a retry after a crash carries the same key).
- ``slack`` / ``teams``: the incoming webhook's JSON (text; a MessageCard), the URL from the
  environment or from the channel's Prefect block (``SlackWebhook`` / ``MicrosoftTeamsWebhook``).
- ``pagerduty``: Events API v2 events with the routing key: a page triggers the incident of its
  ``dedup_key`` and a resolve resolves it (Prefect's block can only trigger).
- ``email``: the report's SMTP server (``PGTENDER_SMTP_*``), plain text; the Message-ID is derived
  from the delivery key, so a retried mail is the same message.

Every send ends by the channel's deadline (``timeout_seconds``: connect, send, the answer read).
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formatdate
from functools import cache
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from flows.alerts import blocks, http
from flows.alerts.notices import Notice
from flows.core import masking, smtp
from flows.core.errors import ConfigError
from flows.core.policy import settings
from flows.core.policy.alerts import (
    Channel,
    ChannelBase,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    resolve_secret,
)


def secret(channel: ChannelBase, env: str | None) -> str:
    """An environment variable's value, registered with the masking filter before it is used."""
    value = resolve_secret(channel, env)
    masking.register_secret(value)
    return value


def _post(channel: ChannelBase, url: str, payload: Any, notice: Notice) -> None:
    http.post_json(
        url,
        payload,
        deadline_seconds=channel.timeout_seconds,
        headers={"idempotency-key": notice.delivery_key},
    )


class Webhook(WebhookChannel):
    def block_types(self) -> list[Any]:
        """The Prefect blocks ``block = "..."`` may name."""
        from prefect.blocks.notifications import CustomWebhookNotificationBlock  # noqa: PLC0415
        from prefect.blocks.system import Secret  # noqa: PLC0415

        return [CustomWebhookNotificationBlock, Secret]

    def block_from_env(self) -> Any:
        """The block ``alerts apply`` saves: the URL a secret substituted at send time, never the
        block's plain ``url``."""
        from prefect.blocks.notifications import CustomWebhookNotificationBlock  # noqa: PLC0415
        from prefect.types import SecretDict  # noqa: PLC0415

        return CustomWebhookNotificationBlock(
            name=self.name,
            url="{{url}}",
            json_data={"title": "{{subject}}", "text": "{{body}}"},
            secrets=SecretDict({"url": secret(self, self.url_env)}),
            headers=None,
            cookies=None,
            timeout=self.timeout_seconds,
            allow_private_urls=True,  # in-house receivers are often on private addresses
        )

    def url(self) -> str:
        if self.url_env:
            return secret(self, self.url_env)
        block = blocks.load_block(self, self.block_types())
        if hasattr(block, "_build_request_args"):  # a Custom Webhook block: its (substituted) URL
            url = str(block._build_request_args("", None)["url"])
        elif hasattr(block, "get"):  # a Secret block holding the URL
            url = str(block.get())
        else:
            raise ConfigError(
                f"alerts channel {self.name!r}: block {self.block_name!r} is neither a Custom Webhook"
                " nor a Secret"
            )
        masking.register_secret(url)
        return url

    def send(self, notice: Notice, *, from_address: str) -> None:
        _post(self, self.url(), notice.payload(), notice)


def _slack_block() -> Any:
    from prefect.blocks.notifications import SlackWebhook  # noqa: PLC0415 - Prefect only when used

    return SlackWebhook


def _teams_block() -> Any:
    from prefect.blocks.notifications import MicrosoftTeamsWebhook  # noqa: PLC0415

    return MicrosoftTeamsWebhook


def _incoming_block(channel: SlackChannel | TeamsChannel, block_type: Any) -> Any:
    from pydantic import SecretStr  # noqa: PLC0415

    return block_type(url=SecretStr(secret(channel, channel.url_env)), allow_private_urls=True)


def _incoming_url(channel: SlackChannel | TeamsChannel, block_type: Any) -> str:
    """An incoming webhook's URL: from the environment, or the channel's Prefect block."""
    if channel.url_env:
        return secret(channel, channel.url_env)
    url: str = blocks.load_block(channel, [block_type]).url.get_secret_value()  # registered with masking
    return url


class Slack(SlackChannel):
    def block_types(self) -> list[Any]:
        return [_slack_block()]

    def block_from_env(self) -> Any:
        return _incoming_block(self, _slack_block())

    def send(self, notice: Notice, *, from_address: str) -> None:
        _post(self, _incoming_url(self, _slack_block()), {"text": notice.text()}, notice)


class Teams(TeamsChannel):
    def block_types(self) -> list[Any]:
        return [_teams_block()]

    def block_from_env(self) -> Any:
        return _incoming_block(self, _teams_block())

    def send(self, notice: Notice, *, from_address: str) -> None:
        card = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": notice.title,
            "title": notice.title,
            "text": notice.text().replace("\n", "\n\n"),  # Teams' markdown: a blank line per break
        }
        _post(self, _incoming_url(self, _teams_block()), card, notice)


class PagerDuty(PagerDutyChannel):
    def block_types(self) -> list[Any]:
        from prefect.blocks.notifications import PagerDutyWebHook  # noqa: PLC0415

        return [PagerDutyWebHook]

    def block_from_env(self) -> Any:
        from pydantic import SecretStr  # noqa: PLC0415

        return self.block_types()[0](
            integration_key=SecretStr(secret(self, self.integration_key_env)),
            api_key=SecretStr(secret(self, self.api_key_env)),
            source="pgtender",
            component="database",
        )

    def routing_key(self) -> str:
        if self.integration_key_env:
            return secret(self, self.integration_key_env)
        block = blocks.load_block(self, self.block_types())
        key: str = block.integration_key.get_secret_value()  # registered with masking
        return key

    def send(self, notice: Notice, *, from_address: str) -> None:
        for event in pagerduty_events(notice, self.routing_key()):
            _post(self, self.events_url, event, notice)


def pagerduty_events(notice: Notice, routing_key: str) -> list[dict[str, Any]]:
    """The Events API v2 events of a notice: a page triggers the incident of its dedup key, a resolve
    resolves it; a test triggers an informational incident and resolves it at once."""
    resolve = {"routing_key": routing_key, "event_action": "resolve", "dedup_key": notice.dedup_key}
    if notice.event == "resolve":
        return [resolve]
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
    return [trigger, resolve] if notice.event == "test" else [trigger]


class Email(EmailChannel):
    def block_types(self) -> list[Any]:
        return []  # PGTENDER_SMTP_* in the environment: no block

    def block_from_env(self) -> Any:
        return None

    def send(self, notice: Notice, *, from_address: str) -> None:
        current = settings.load_settings()  # PGTENDER_SMTP_* of this process
        msg = EmailMessage()
        msg["Subject"] = notice.title
        msg["From"] = from_address
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False)
        # the same notice (a retry after a crash) is the same message: mail clients fold it
        msg["Message-ID"] = f"<{hashlib.sha256(notice.delivery_key.encode()).hexdigest()[:40]}@pgtender>"
        msg.set_content(notice.text())
        smtp.send(msg, list(self.to), current, deadline_seconds=self.timeout_seconds)


Sender = Annotated[Webhook | Slack | Teams | PagerDuty | Email, Field(discriminator="type")]


@cache
def _adapter() -> TypeAdapter[Any]:
    return TypeAdapter(Sender)


def sender(channel: Channel) -> Webhook | Slack | Teams | PagerDuty | Email:
    """The class that sends on ``channel`` (chosen by its ``type``)."""
    if isinstance(channel, Webhook | Slack | Teams | PagerDuty | Email):
        return channel
    made: Webhook | Slack | Teams | PagerDuty | Email = _adapter().validate_python(channel.model_dump())
    return made
