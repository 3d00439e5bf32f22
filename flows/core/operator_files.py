"""Files an operator hands pgtender — the policy file (``PGTENDER_CONFIG``), dump manifests —
read with bounds: at most ``MAX_BYTES`` (a device such as /dev/zero or a runaway file is refused
after that many bytes, not read until memory runs out) and at most ``MAX_DEPTH`` levels of nested
arrays and tables (checked before parsing: a deeply nested document is one line, never a
``RecursionError`` and its traceback). Every refusal is a ``ConfigError``: one line, exit 2.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import IO, Any

from flows.core.errors import ConfigError

MAX_BYTES = 1 << 20  # 1 MiB: a policy file of hundreds of targets is ~100 KB
MAX_DEPTH = 32  # pgtender's own files nest 4 deep

# What may hold brackets without nesting anything: strings and comments, blanked before counting.
_TOML_OPAQUE = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')
_JSON_OPAQUE = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def read_bytes(path: Path, *, what: str, limit: int = MAX_BYTES) -> bytes:
    """At most ``limit`` bytes of ``path``; more is refused (nothing further is read)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise ConfigError(f"{what} {path} is larger than {_size(limit)}: refused (is it the right file?)")
    return data


def read_text(path: Path, *, what: str, limit: int = MAX_BYTES) -> str:
    try:
        return read_bytes(path, what=what, limit=limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def nesting(text: str, opaque: re.Pattern[str]) -> int:
    """How deep arrays and tables nest in ``text`` (strings and comments left out)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(opaque.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def _check_depth(path: object, what: str, text: str, opaque: re.Pattern[str], limit: int) -> None:
    depth = nesting(text, opaque)
    if depth > limit:
        raise ConfigError(f"{what} {path} nests {depth} levels of arrays or tables: at most {limit} are read")


def read_toml(path: Path, *, what: str, limit: int = MAX_BYTES, depth: int = MAX_DEPTH) -> dict[str, Any]:
    text = read_text(path, what=what, limit=limit)
    _check_depth(path, what, text, _TOML_OPAQUE, depth)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None
    except RecursionError:  # not reached under the depth limit; never a traceback
        raise ConfigError(f"{what} {path} nests too deeply") from None


def read_json(path: Path, *, what: str, limit: int = MAX_BYTES, depth: int = MAX_DEPTH) -> Any:
    return parse_json(read_text(path, what=what, limit=limit), path, what=what, depth=depth)


def read_json_from(
    fh: IO[bytes], where: object, *, what: str, limit: int = MAX_BYTES, depth: int = MAX_DEPTH
) -> Any:
    """``read_json`` of an open stream (an object store's file): at most ``limit`` bytes read."""
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{what} {where} is larger than {_size(limit)}: refused (is it the right file?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {where} is not UTF-8 text (byte {exc.start})") from None
    return parse_json(text, where, what=what, depth=depth)


def parse_json(text: str, where: object, *, what: str, depth: int = MAX_DEPTH) -> Any:
    _check_depth(where, what, text, _JSON_OPAQUE, depth)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what} {where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} {where} nests too deeply") from None


def _size(limit: int) -> str:
    return f"{limit >> 20} MB" if limit >= 1 << 20 and not limit % (1 << 20) else f"{limit} bytes"


__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "nesting",
    "parse_json",
    "read_bytes",
    "read_json",
    "read_json_from",
    "read_text",
    "read_toml",
]
