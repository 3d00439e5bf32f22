"""``[retention] dump_dir`` and ``[retention.storage]``: where dumps go and how the store is reached.

A ``dump_dir`` is a local or shared path, or an fsspec URL (``s3://bucket/prefix``). Credentials
never appear in the policy: they come from environment variables or Prefect Secret blocks named
here, or from the store's own default chain (AWS_* variables, an instance role)."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator

URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.*)$")
SCHEMES = ("s3", "file", "memory")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BLOCK = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def is_url(location: str) -> bool:
    return URL.match(location) is not None


def check_location(value: str) -> str:
    """A path, or a URL of a supported scheme without credentials in it."""
    if not value or "\x00" in value:
        raise ValueError("dump_dir must be a non-empty path or URL")
    match = URL.match(value)
    if match is None:
        return value
    if match["scheme"] not in SCHEMES:
        raise ValueError(f"dump_dir scheme {match['scheme']}:// is not one of {', '.join(SCHEMES)}")
    if "@" in match["rest"].split("/", 1)[0]:
        raise ValueError(
            "dump_dir must not hold credentials: name them in [retention.storage] (key_env/secret_env)"
        )
    if match["scheme"] != "file" and not match["rest"].strip("/"):
        raise ValueError(f"dump_dir {value!r} names no bucket")
    return value.rstrip("/") if len(value.rstrip("/")) > len(match["scheme"]) + 3 else value


def _path_to_str(value: Any) -> Any:
    return str(value) if isinstance(value, PurePath) else value


Location = Annotated[str, BeforeValidator(_path_to_str)]


def join(location: str, name: str) -> str:
    """``location`` with one more path segment (URLs keep their ``//``)."""
    return f"{location.rstrip('/')}/{name}"


class ArchiveStorage(BaseModel):
    """``[retention.storage]``: how an object store is reached (ignored for a path)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    endpoint_url: str | None = None  # an S3-compatible server (MinIO, SeaweedFS, Ceph); unset: AWS
    region: str | None = None
    key_env: str | None = None  # the access key id from this environment variable ...
    secret_env: str | None = None  # ... and the secret key from this one
    key_secret: str | None = None  # or from these Prefect Secret blocks (by name)
    secret_secret: str | None = None

    @field_validator("key_env", "secret_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (give the name, not the key)")
        return value

    @field_validator("key_secret", "secret_secret")
    @classmethod
    def _block(cls, value: str | None) -> str | None:
        if value is not None and not _BLOCK.match(value):
            raise ValueError(f"{value!r} is not a Prefect block name (lowercase letters, digits, dashes)")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/@\s]+(/\S*)?$", value):
            raise ValueError("endpoint_url must be an http(s) URL without credentials")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> ArchiveStorage:
        by_env = (self.key_env is None, self.secret_env is None)
        by_block = (self.key_secret is None, self.secret_secret is None)
        if len(set(by_env)) > 1 or len(set(by_block)) > 1:
            raise ValueError(
                "give the access key and the secret key together (key_env + secret_env, or"
                " key_secret + secret_secret)"
            )
        if not by_env[0] and not by_block[0]:
            raise ValueError("give the keys from environment variables or from Secret blocks, not both")
        return self
