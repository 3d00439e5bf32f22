"""One database, one target: which database a URL reaches, asked of the server itself.

Host names say nothing about identity: ``127.0.0.1``, ``localhost``, the machine's own name, a DNS
alias or a second address of the same server all reach one database, and two targets on it would
run every job twice and page twice. The server knows: its system identifier (``pg_control_system``,
fixed at initdb) and the database's oid name one database on one cluster, however it was reached.

Cost: one connection and one query per target, all targets at once (a thread each, up to
``PARALLEL``), once per URL per process for ``CACHE_SECONDS`` (a served process sweeps every few
minutes: it asks again only after that; a URL that did not answer, after a minute). A target that
cannot be reached, or a role not allowed to read ``pg_control_system``, is not identified (its run
says why it fails); a replica is not either (it writes nothing, so it conflicts with nothing, and
it shares its primary's identity).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg

from flows.core import masking
from flows.core.db import load_sql

PARALLEL = 16
CACHE_SECONDS = 600.0
UNREACHABLE_CACHE_SECONDS = 60.0  # a target that did not answer is asked again after this
CONNECT_TIMEOUT_SECONDS = 5

Identity = tuple[str, int]  # (system identifier, database oid)

_cache: dict[str, tuple[float, Identity | None]] = {}
_cache_lock = threading.Lock()


def _cached(dsn: str) -> tuple[bool, Identity | None]:
    with _cache_lock:
        cached = _cache.get(dsn)
    if cached is not None and cached[0] > time.monotonic():
        return True, cached[1]
    return False, None


def _ask(dsn: str) -> Identity | None:
    """The identity of a primary's database; None for a replica or a database that cannot tell."""
    known, found_before = _cached(dsn)
    if known:
        return found_before
    try:
        with psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="pgtender-identity",
            prepare_threshold=None,
        ) as conn:
            row = conn.execute(load_sql("queries/fleet/identity.sql")).fetchone()
    except psycopg.Error:  # unreachable or not allowed: not identified, asked again in a minute
        with _cache_lock:
            _cache[dsn] = (time.monotonic() + UNREACHABLE_CACHE_SECONDS, None)
        return None
    found: Identity | None = None
    if row is not None and row[0] is not None and row[1] is not None and not row[2]:
        found = (str(row[0]), int(row[1]))
    with _cache_lock:
        _cache[dsn] = (time.monotonic() + CACHE_SECONDS, found)
    return found


def identify(dsns: Sequence[str]) -> list[Identity | None]:
    """The identity of each URL's database (None: not identified), asked in parallel."""
    if not dsns:
        return []
    for dsn in dsns:
        masking.register_dsn(dsn)
    missing = [d for d in dsns if not _cached(d)[0]]
    if missing:  # only the URLs not asked lately, all at once
        workers = min(PARALLEL, len(missing))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="identity") as pool:
            list(pool.map(_ask, missing))
    return [_ask(d) for d in dsns]


def forget() -> None:
    """Drop the cached identities (tests; a URL now reaching another database)."""
    with _cache_lock:
        _cache.clear()
