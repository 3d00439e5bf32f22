"""Connections: psycopg 3, a pool per DSN, application_name and default timeouts on every session."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg import conninfo, pq
from psycopg_pool import ConnectionPool, PoolTimeout

from flows.core import masking
from flows.core.errors import ConfigError, DatabaseUnavailable, InfrastructureError
from flows.core.policy.settings import DatabasePolicy


def sql_dir() -> Path:
    """pgtender's ``sql/`` as package data (``flows/sql``: in a checkout a link to the top-level
    ``sql/``, in a wheel a copy), found through the package itself, never by guessing paths."""
    root = resources.files("flows") / "sql"
    if not root.is_dir():
        raise InfrastructureError("pgtender's sql/ directory is missing from the installation")
    return Path(str(root))


def load_sql(relative: str) -> bytes:
    """A static statement from ``sql/`` (bytes: psycopg runs it as written, no formatting)."""
    return (sql_dir() / relative).read_bytes()


DEFAULT_CONNECT_TIMEOUT_S = 10


def check_dsn(dsn: str) -> None:
    """Refuse a connection string libpq would misread (ConfigError, exit 2), before it is used; from
    now on its password, in every form, is masked in this process's messages."""
    masking.register_dsn(dsn)
    reason = masking.malformed_url(dsn)
    if reason is not None:
        raise ConfigError(f"the database URL is malformed: {reason}")


def connect_kwargs(dsn: str, policy: DatabasePolicy, application_name: str) -> dict[str, str]:
    """Validate the DSN and build the session options; raises ConfigError on a malformed DSN."""
    check_dsn(dsn)
    parsed = conninfo.conninfo_to_dict(dsn)
    options = parsed.get("options") or ""
    options = (
        f"{options} -c statement_timeout={policy.statement_timeout_ms}"
        f" -c lock_timeout={policy.lock_timeout_ms}"
        " -c idle_in_transaction_session_timeout=600000"
    ).strip()
    kwargs = {"application_name": application_name, "options": options}
    # The URL's connect_timeout (or PGCONNECT_TIMEOUT) wins; without one, 10 s.
    if not str(parsed.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT") or "").strip():
        kwargs["connect_timeout"] = str(DEFAULT_CONNECT_TIMEOUT_S)
    return kwargs


def _options(kwargs: dict[str, str]) -> dict[str, Any]:
    return dict(kwargs)  # libpq options, as psycopg.connect(**kwargs) takes them


def describe(name: str | None) -> str:
    """How messages name a database: by its target's name, never by host, port or database name."""
    return f"target {name!r}" if name else "the database"


# libpq / server messages that mean the settings are wrong, not that the server is unwell: wrong
# password, unknown database or role, a rejected client, a bad option value (sslmode=bogus).
_CONFIG_FAILURES = re.compile(
    r"authentication failed|does not exist|no password supplied|pg_hba\.conf|"
    r"invalid \w+ value|invalid port number|invalid integer value|invalid connection option|"
    r"invalid URI|does not support SSL|certificate|is not permitted to log in",
    re.I,
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return masking.mask_secrets(text.splitlines()[0] if text else repr(exc))


def connect(
    dsn: str,
    *,
    policy: DatabasePolicy | None = None,
    application_name: str = "pgtender",
    autocommit: bool = False,
    name: str | None = None,
) -> psycopg.Connection[tuple[object, ...]]:
    """One connection with pgtender's session defaults. Errors come back masked and one-line, naming
    the target (``name``), never where it lives: ConfigError (exit 2) for settings that can never
    work, InfrastructureError (exit 3) otherwise."""
    kwargs = connect_kwargs(dsn, policy or DatabasePolicy(), application_name)
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, prepare_threshold=None, **_options(kwargs))
    except psycopg.ProgrammingError as exc:  # an option libpq rejects before connecting
        raise ConfigError(f"cannot connect to {describe(name)}: {_first_line(exc)}") from None
    except psycopg.OperationalError as exc:
        message = _first_line(exc)
        if _CONFIG_FAILURES.search(message):
            raise ConfigError(f"cannot connect to {describe(name)}: {message}") from None
        raise DatabaseUnavailable(f"cannot connect to {describe(name)}: {message}") from None
    with _pools_lock:
        _verified.add(dsn)
    return conn


class Connection(psycopg.Connection[tuple[Any, ...]]):
    """A pooled connection. ``on_begin``, when its borrower sets one, runs first in each outermost
    transaction (``with conn.transaction():``): a run's fence check (``flows.core.fence``)."""

    on_begin: Callable[[Connection], None] | None = None

    @contextmanager
    def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> Iterator[psycopg.Transaction]:
        outermost = self.pgconn.transaction_status == pq.TransactionStatus.IDLE
        with super().transaction(savepoint_name, force_rollback) as tx:
            hook = self.on_begin
            if outermost and hook is not None:
                hook(self)
            yield tx


class _Masked(logging.Filter):
    """psycopg's own log lines (the pool's "error connecting in ...") masked like ours: no password,
    no host, port or database name."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = masking.mask_secrets(record.getMessage())
        record.args = None
        return True


def _mask_library_logs() -> None:
    for name in ("psycopg", "psycopg.pool"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Masked) for f in logger.filters):
            logger.addFilter(_Masked())


_verified: set[str] = set()  # DSNs a direct connection has reached: their settings work
_pools: dict[tuple[str, str], ConnectionPool[Connection]] = {}
_pools_lock = threading.Lock()


def get_pool(
    dsn: str,
    *,
    policy: DatabasePolicy | None = None,
    application_name: str = "pgtender",
    name: str | None = None,
) -> ConnectionPool[Connection]:
    """A process-wide pool per DSN (thread-safe), opened on first use."""
    policy = policy or DatabasePolicy()
    key = (dsn, application_name)
    with _pools_lock:
        pool = _pools.get(key)
        checked = dsn in _verified
    if pool is None and not checked:
        # One direct connection first: a wrong password, an unknown database or a bad option is a
        # one-line ConfigError now, not "couldn't get a connection after 30 s" from the pool later.
        # (Not when one already got through, e.g. the run's lock session: a connect saved a target.)
        connect(dsn, policy=policy, application_name=application_name, autocommit=True, name=name).close()
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            # The pool's background reconnects log each failure as a raw warning; pgtender reports a
            # database it cannot reach itself, in one line (``_checkout``).
            logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
            _mask_library_logs()
            kwargs = connect_kwargs(dsn, policy, application_name)
            pool = ConnectionPool(
                dsn,
                connection_class=Connection,
                min_size=policy.pool_min_size,
                max_size=policy.pool_max_size,
                # No server-side prepared statements: a long-lived pooled connection would otherwise
                # keep generic plans made when a table was small, or for another day's partition.
                kwargs={**kwargs, "autocommit": True, "prepare_threshold": None},
                open=False,
                name=f"pgtender:{application_name}",
            )
            pool.open(wait=False)
            _pools[key] = pool
    return pool


@contextmanager
def pooled(
    dsn: str,
    *,
    policy: DatabasePolicy | None = None,
    application_name: str = "pgtender",
    name: str | None = None,
) -> Iterator[Connection]:
    """Borrow an autocommit connection; open explicit transactions with ``conn.transaction()``.
    ``name``: the target, for messages."""
    pool = get_pool(dsn, policy=policy, application_name=application_name, name=name)
    conn = _checkout(pool, dsn, policy or DatabasePolicy(), application_name, name)
    try:
        yield conn
    finally:
        pool.putconn(conn)


POOL_WAIT_S = 30.0  # a busy pool: how long a borrower waits for a connection
PROBE_AFTER_S = 2.0  # no connection by then: is the database reachable at all? (a direct connect)


def _checkout(
    pool: ConnectionPool[Connection],
    dsn: str,
    policy: DatabasePolicy,
    application_name: str,
    name: str | None,
) -> Connection:
    """A pooled connection. A database that went away (a target dying mid-run) is its connect
    error in about ``PROBE_AFTER_S``, not a ``PoolTimeout`` after ``POOL_WAIT_S``."""
    try:
        return pool.getconn(timeout=PROBE_AFTER_S)
    except PoolTimeout:
        pass
    connect(
        dsn, policy=policy, application_name=application_name, autocommit=True, name=name
    ).close()  # raises
    try:
        return pool.getconn(timeout=POOL_WAIT_S - PROBE_AFTER_S)
    except PoolTimeout as exc:
        raise DatabaseUnavailable(
            f"no database connection to {describe(name)} within {POOL_WAIT_S:g} s (the pool is busy):"
            f" {masking.mask_secrets(str(exc))}"
        ) from None


def release(dsn: str) -> None:
    """Close the pools of one database (a fleet sweep is done with a target once its run ended:
    its idle connections would otherwise stay open, one set per target, until the process exits)."""
    with _pools_lock:
        done = [key for key in _pools if key[0] == dsn]
        pools = [_pools.pop(key) for key in done]
    for pool in pools:
        pool.close()


def close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()
        _verified.clear()


def refused(exc: psycopg.Error) -> ConfigError | None:
    """A database error that is the configuration's, not the server's: the role pgtender connects
    as lacks a privilege (SQLSTATE 42501). Bad input: one line, exit 2."""
    if not isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return None
    return ConfigError(
        f"the database role lacks a privilege: {_first_line(exc)} (grant it, or connect as the role"
        " that owns pgtender's tables: the one that ran pgtender migrate)"
    )


def set_local(conn: psycopg.Connection[tuple[object, ...]], name: str, value: str) -> None:
    """``SET LOCAL name = value`` for the current transaction (a parameter, never formatted SQL)."""
    conn.execute(load_sql("queries/session/set_local.sql"), {"name": name, "value": value})


def is_replica(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])
