"""The Prefect blocks a channel may read (``block = "..."``): found, loaded, their secrets masked."""

from __future__ import annotations

from typing import Any

from flows.core import masking
from flows.core.errors import ConfigError
from flows.core.policy.alerts import ChannelBase


def find_block(channel: ChannelBase, types: list[Any]) -> Any | None:
    """The channel's saved Prefect block (one of ``types``), None when there is none."""
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415 - Prefect only when a block is used

    for cls in types:
        try:
            return cls.load(channel.block_name)
        except (ObjectNotFound, ValueError):
            continue
    return None


def load_block(channel: ChannelBase, types: list[Any]) -> Any:
    """The named Prefect block of a channel, or a one-line ConfigError; its secrets are masked."""
    block = find_block(channel, types)
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
