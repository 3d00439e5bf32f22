"""Alert channels: a notice sent on one channel or on all of them, and the Prefect blocks
``pgtender alerts apply`` keeps. How each channel type sends is its class in ``senders``.

Secrets come from the environment or from a Prefect block; each is registered with the masking
filter before it is used, so an error that quotes a URL reaches logs masked; the notice itself
never carries one. Every failure is one line naming the channel, never its URL.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from flows.alerts import blocks, http
from flows.alerts.notices import Notice
from flows.alerts.senders import pagerduty_events, sender
from flows.core import masking
from flows.core.errors import PgtenderError
from flows.core.logs import get_logger
from flows.core.policy.alerts import Channel


class DeliveryFailed(Exception):
    """One channel did not accept a notice (the message is masked, one line)."""


def _one_line(exc: BaseException) -> str:
    return masking.mask_secrets(" ".join(str(exc).split()) or type(exc).__name__)


def send(channel: Channel, notice: Notice, *, from_address: str = "pgtender@localhost") -> None:
    """Deliver one notice on one channel by its deadline; ``DeliveryFailed`` (masked, one line) when
    it was not accepted."""
    try:
        sender(channel).send(notice, from_address=from_address)
    except http.PostFailed as exc:
        raise DeliveryFailed(_one_line(exc)) from None
    except (httpx.HTTPError, OSError, ValueError, PgtenderError) as exc:  # httpx: a block from Prefect
        raise DeliveryFailed(f"{type(exc).__name__}: {_one_line(exc)}") from None


@dataclass
class Attempt:
    """One notice on every channel: who accepted it, who failed."""

    accepted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def deliver(
    notice: Notice, channels: Sequence[Channel], *, from_address: str, skip: Collection[str] = ()
) -> Attempt:
    """Send ``notice`` on every channel but those in ``skip``; failures are logged by channel name."""
    log = get_logger(event_kind=notice.event, check=notice.what, target=notice.target)
    attempt = Attempt()
    for channel in channels:
        if channel.name in skip:
            continue
        try:
            send(channel, notice, from_address=from_address)
        except DeliveryFailed as exc:
            log.warning("alert channel failed", channel=channel.name, type=channel.type, error=str(exc))
            attempt.failed.append(channel.name)
            continue
        attempt.accepted.append(channel.name)
    return attempt


# --- alerts apply ---------------------------------------------------------------------------------

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


def apply(channels: Sequence[Channel]) -> list[Applied]:
    """Create or update the Prefect block of every channel configured from the environment
    (idempotent: an identical block is left alone); check that named blocks exist."""
    out: list[Applied] = []
    for channel in channels:
        made = sender(channel)
        if not made.block_types():
            out.append(Applied(channel.name, "-", "no block"))  # PGTENDER_SMTP_* in the environment
            continue
        if getattr(channel, "block", None):
            blocks.load_block(channel, made.block_types())
            out.append(Applied(channel.name, channel.block_name, "uses block"))
            continue
        wanted = made.block_from_env()
        existing = blocks.find_block(channel, made.block_types())
        if existing is not None and _same(existing, wanted):
            out.append(Applied(channel.name, channel.block_name, "unchanged"))
            continue
        wanted.save(channel.block_name, overwrite=True)
        out.append(Applied(channel.name, channel.block_name, "created" if existing is None else "updated"))
    return out


__all__ = ["Applied", "Attempt", "DeliveryFailed", "apply", "deliver", "pagerduty_events", "send"]
