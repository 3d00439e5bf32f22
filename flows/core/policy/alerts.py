"""The ``[alerts]`` section of the policy file: where pages go, as code.

```toml
[[alerts.channels]]
name = "oncall"              # unique; the Prefect block pgtender applies is "pgtender-oncall"
type = "webhook"             # webhook | slack | teams | pagerduty | email
url_env = "ONCALL_HOOK"      # the URL lives in this environment variable ...
# block = "my-hook"          # ... or in a Prefect block of that name (exactly one of the two)

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

Secrets are never written into the policy: a channel names the environment variable (or the
Prefect block) that holds them. The shape is checked when the policy is read (exit 2, one line);
whether the variables are set is checked when a channel is used (``alerts apply``, ``alerts test``,
a page): ``resolve_secret`` raises ``ConfigError`` naming the variable, never its value.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.core.errors import ConfigError

ChannelType = Literal["webhook", "slack", "teams", "pagerduty", "email"]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
BlockName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)]
Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]


PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=60)]
    type: ChannelType
    url_env: EnvName | None = None
    block: BlockName | None = None
    integration_key_env: EnvName | None = None  # pagerduty (Events API v2 routing key)
    api_key_env: EnvName | None = None  # pagerduty (only Prefect's block needs it)
    # pagerduty: the Events API v2 endpoint (the EU service: https://events.eu.pagerduty.com/v2/enqueue)
    events_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = PAGERDUTY_EVENTS_URL
    to: Annotated[tuple[Address, ...], Field(strict=False)] = ()  # email
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0

    @model_validator(mode="after")
    def _one_source_of_secrets(self) -> Channel:
        kind = self.type
        given = {
            k
            for k in ("url_env", "block", "integration_key_env", "api_key_env")
            if getattr(self, k) is not None
        }
        if kind == "email":
            if given:
                raise ValueError(f"an email channel takes `to` only, not {', '.join(sorted(given))}")
            if not self.to:
                raise ValueError("an email channel needs `to` (one or more addresses)")
            return self
        if self.to:
            raise ValueError(f"`to` is for email channels; a {kind} channel has no recipients")
        if self.events_url != PAGERDUTY_EVENTS_URL and kind != "pagerduty":
            raise ValueError(f"`events_url` is for pagerduty channels, not {kind}")
        if kind == "pagerduty":
            keys = {"integration_key_env", "api_key_env"}
            if given in ({"block"}, keys):
                return self
            raise ValueError("a pagerduty channel needs either integration_key_env and api_key_env, or block")
        if given in ({"url_env"}, {"block"}):
            return self
        raise ValueError(f"a {kind} channel needs exactly one of url_env or block")

    @property
    def block_name(self) -> str:
        """The Prefect block this channel reads (``block``) or that ``alerts apply`` writes."""
        return self.block or f"pgtender-{self.name}"


class AlertsPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    channels: Annotated[tuple[Channel, ...], Field(strict=False)] = ()
    # where a page points for what to do next
    runbook_url: Annotated[str, Field(max_length=500)] = "docs/runbook.md"

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsPolicy:
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channel names must be unique: {', '.join(dup)} used twice")
        return self


def resolve_secret(channel: Channel, env: str | None) -> str:
    """The value of the environment variable ``env`` (ConfigError naming it when unset or empty)."""
    if env is None:
        raise ConfigError(f"alerts channel {channel.name!r}: no environment variable configured")
    value = os.environ.get(env, "").strip()
    if not value:
        raise ConfigError(f"alerts channel {channel.name!r}: environment variable {env} is not set")
    return value
