"""The object store's options: endpoint, region and keys (from environment variables or Prefect
Secret blocks, by name). The keys go to the store's client and nowhere else: no message names them."""

from __future__ import annotations

import os
from typing import Any, cast

from flows.core.errors import ConfigError, InfrastructureError
from flows.core.policy.archives import ArchiveStorage


def _from_env(var: str) -> str:
    value = (os.environ.get(var) or "").strip()
    if not value:
        raise ConfigError(f"[retention.storage]: environment variable {var} is not set")
    return value


def _from_block(block: str) -> str:
    import httpx  # noqa: PLC0415
    from prefect.blocks.system import Secret  # noqa: PLC0415 - only stores keyed by blocks need Prefect

    try:
        loaded = cast("Secret[Any]", Secret.load(block))
    except ValueError:
        raise ConfigError(f"[retention.storage]: Prefect Secret block {block!r} does not exist") from None
    except (httpx.HTTPError, OSError) as exc:
        raise InfrastructureError(
            f"[retention.storage]: cannot read Prefect Secret block {block!r}: {type(exc).__name__}"
        ) from None
    value = loaded.get()
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[retention.storage]: Prefect Secret block {block!r} does not hold a string")
    return value.strip()


def s3_options(storage: ArchiveStorage) -> dict[str, Any]:
    """Keyword arguments of ``s3fs.S3FileSystem`` for this policy."""
    options: dict[str, Any] = {
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 60},
    }
    client: dict[str, Any] = {}
    if storage.endpoint_url:
        client["endpoint_url"] = storage.endpoint_url
    if storage.region:
        client["region_name"] = storage.region
    if client:
        options["client_kwargs"] = client
    if storage.key_env and storage.secret_env:
        options["key"], options["secret"] = _from_env(storage.key_env), _from_env(storage.secret_env)
    elif storage.key_secret and storage.secret_secret:
        options["key"] = _from_block(storage.key_secret)
        options["secret"] = _from_block(storage.secret_secret)
    return options
