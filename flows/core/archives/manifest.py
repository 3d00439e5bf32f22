"""The dump format and its manifest, verified by reading both back from the store.

A dump is ``COPY ... TO STDOUT`` (text format) compressed with gzip; its manifest ``<stem>.json``
names the data file and holds its sha256 and row count. Retention's manifests describe a partition
(``key``, ``lower``, ``upper``); a whole-table dump (the rollback guard's) has ``kind = "table"``
and no range.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from flows.core.archives.ownership import partial_name
from flows.core.archives.store import Store
from flows.core.ddl import RowCountMismatch

DUMP_FORMAT = "postgresql-copy-text+gzip"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(store: Store, name: str) -> dict[str, Any]:
    try:
        manifest = json.loads(store.read_bytes(name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RowCountMismatch(f"manifest {store.ref(name)} is unreadable ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("file"), str):
        raise RowCountMismatch(f"{store.ref(name)} is not a pgtender dump manifest")
    return manifest


def write_manifest(store: Store, name: str, manifest: dict[str, Any], owner: str) -> None:
    """Replace ``name`` atomically (a re-dump's manifest replaces the old one whole)."""
    data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    store.put_atomic(name, data, partial_name(name, owner))


def digest_and_rows(store: Store, name: str) -> tuple[str, int]:
    """The sha256 of a stored dump and the number of rows (lines) it holds, in one read."""
    digest = hashlib.sha256()
    lines = 0

    class _Tee:
        def __init__(self, raw: Any) -> None:
            self.raw = raw

        def read(self, size: int = -1, /) -> bytes:
            chunk: bytes = self.raw.read(size)
            digest.update(chunk)
            return chunk

    with store.open_read(name) as raw:
        tee: Any = _Tee(raw)
        fh = gzip.GzipFile(fileobj=tee, mode="rb")
        with fh:
            for _ in fh:
                lines += 1
        # the gzip reader stops at the end of the stream; hash whatever trails it too
        for chunk in iter(lambda: raw.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest(), lines


def verify_dump(store: Store, name: str) -> dict[str, Any]:
    """Re-read a dump in its store: its checksum and its row count must match the manifest.
    Returns the manifest; RowCountMismatch (nothing is dropped) otherwise."""
    try:
        manifest = read_manifest(store, name)
    except FileNotFoundError:
        raise RowCountMismatch(f"manifest {store.ref(name)} is missing; nothing dropped") from None
    data = manifest["file"]
    damaged = RowCountMismatch(f"dump {store.ref(data)} does not match its checksum; nothing dropped")
    if not store.exists(data):
        raise damaged
    try:
        sha, lines = digest_and_rows(store, data)
    except (OSError, EOFError, gzip.BadGzipFile):
        raise damaged from None
    if sha != manifest["sha256"]:
        raise damaged
    if lines != manifest["rows"]:
        raise RowCountMismatch(
            f"dump {store.ref(data)} holds {lines} rows, expected {manifest['rows']}; nothing dropped"
        )
    return manifest
