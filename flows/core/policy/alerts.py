"""The ``[alerts]`` section of the policy file: where pages go, as code.

```toml
[[alerts.channels]]
name = "oncall"              # unique; the Prefect block pgtender applies is "pgtender-oncall"
type = "webhook"             # webhook | slack | teams | pagerduty | email
url_env = "ONCALL_HOOK"      # the URL lives in this environment variable ...
# block = "my-hook"          # ... or in a Prefect block of that name (exactly one of the two)
# timeout_seconds = 5        # the whole delivery of one notice: connect, send, the answer read

[[alerts.channels]]
name = "pd"
type = "pagerduty"
integration_key_env = "PD_ROUTING_KEY"
api_key_env = "PD_API_KEY"

[[alerts.channels]]
name = "mail"
type = "email"               # the report's SMTP server (PGTENDER_SMTP_*)
to = ["oncall@example.com"]
```

Each channel type is one model, chosen by ``type`` (a pydantic discriminated union: ``Channel``).
These are the shapes only: the alerts layer (``flows.alerts.senders``) maps each to the class that
sends on it, so core never imports how a notice travels. Secrets are never written into the
policy: a channel names the environment variable (or the Prefect block) that holds them. The shape
is checked when the policy is read (exit 2, one line); whether the variables are set is checked
when a channel is used (``alerts apply``, ``alerts test``, a page): ``resolve_secret`` raises
``ConfigError`` naming the variable, never its value.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.core.errors import ConfigError

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
BlockName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)]
Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# A notice's whole delivery on one channel (connect, send, the answer read): a receiver that hangs
# or answers one byte at a time costs at most this, once per delivery round (see flows.alerts.outbox).
DEFAULT_DEADLINE_SECONDS = 5.0

# Keys that belong to some channel types only: a friendlier line than "Extra inputs are not permitted".
_ONLY_FOR = {
    "to": ("email",),
    "events_url": ("pagerduty",),
    "integration_key_env": ("pagerduty",),
    "api_key_env": ("pagerduty",),
    "url_env": ("webhook", "slack", "teams"),
    "block": ("webhook", "slack", "teams", "pagerduty"),
}


class ChannelBase(BaseModel):
    """What every channel has: a name, a type, a delivery deadline."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=60)]
    type: str
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = DEFAULT_DEADLINE_SECONDS

    @model_validator(mode="before")
    @classmethod
    def _keys_of_other_types(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = str(data.get("type", ""))
        for key, types in _ONLY_FOR.items():
            if key in data and kind not in types:
                if kind == "email":
                    raise ValueError(f"an email channel takes `to` only, not {key}")
                if key == "to":
                    raise ValueError(f"`to` is for email channels; a {kind} channel has no recipients")
                raise ValueError(f"`{key}` is for {' / '.join(types)} channels, not {kind}")
        return data

    @property
    def env_names(self) -> tuple[str, ...]:
        """The environment variables this channel reads its secrets from (none: a block, email)."""
        return tuple(
            env
            for key in ("url_env", "integration_key_env", "api_key_env")
            if (env := getattr(self, key, None)) is not None
        )

    @property
    def block_name(self) -> str:
        """The Prefect block this channel reads (``block``) or that ``alerts apply`` writes."""
        block = getattr(self, "block", None)
        return block or f"pgtender-{self.name}"


class _UrlChannel(ChannelBase):
    """A channel reached at one secret URL: from the environment or a Prefect block."""

    url_env: EnvName | None = None
    block: BlockName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _UrlChannel:
        if (self.url_env is None) == (self.block is None):
            raise ValueError(f"a {self.type} channel needs exactly one of url_env or block")
        return self


class WebhookChannel(_UrlChannel):
    """pgtender POSTs the notice as JSON to the URL."""

    type: Literal["webhook"]


class SlackChannel(_UrlChannel):
    """A Slack incoming webhook."""

    type: Literal["slack"]


class TeamsChannel(_UrlChannel):
    """A Microsoft Teams incoming webhook."""

    type: Literal["teams"]


class PagerDutyChannel(ChannelBase):
    """PagerDuty Events API v2 (the routing key from the environment or a ``PagerDutyWebHook`` block)."""

    type: Literal["pagerduty"]
    integration_key_env: EnvName | None = None  # the Events API v2 routing key
    api_key_env: EnvName | None = None  # only Prefect's block needs it
    block: BlockName | None = None
    # the EU service: https://events.eu.pagerduty.com/v2/enqueue
    events_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = PAGERDUTY_EVENTS_URL

    @model_validator(mode="after")
    def _keys(self) -> PagerDutyChannel:
        given = {k for k in ("integration_key_env", "api_key_env", "block") if getattr(self, k) is not None}
        if given in ({"block"}, {"integration_key_env", "api_key_env"}):
            return self
        raise ValueError("a pagerduty channel needs either integration_key_env and api_key_env, or block")


class EmailChannel(ChannelBase):
    """Plain-text mail through the report's SMTP server (``PGTENDER_SMTP_*``)."""

    type: Literal["email"]
    to: Annotated[tuple[Address, ...], Field(strict=False)] = ()

    @model_validator(mode="after")
    def _recipients(self) -> EmailChannel:
        if not self.to:
            raise ValueError("an email channel needs `to` (one or more addresses)")
        return self


Channel = Annotated[
    WebhookChannel | SlackChannel | TeamsChannel | PagerDutyChannel | EmailChannel,
    Field(discriminator="type"),
]
CHANNEL_TYPES: tuple[type[ChannelBase], ...] = (
    WebhookChannel,
    SlackChannel,
    TeamsChannel,
    PagerDutyChannel,
    EmailChannel,
)


class AlertsPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    channels: Annotated[tuple[Channel, ...], Field(strict=False)] = ()
    # where a page points for what to do next
    runbook_url: Annotated[str, Field(max_length=500)] = "docs/runbook.md"
    # one delivery round (after a run): notices still due when it is spent wait for the next round
    delivery_budget_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsPolicy:
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channel names must be unique: {', '.join(dup)} used twice")
        return self


def resolve_secret(channel: ChannelBase, env: str | None) -> str:
    """The value of the environment variable ``env`` (ConfigError naming it when unset or empty)."""
    if env is None:
        raise ConfigError(f"alerts channel {channel.name!r}: no environment variable configured")
    value = os.environ.get(env, "").strip()
    if not value:
        raise ConfigError(f"alerts channel {channel.name!r}: environment variable {env} is not set")
    return value
