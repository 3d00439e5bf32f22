"""The fleet: which databases pgtender tends, resolved and checked before any of them is touched.

With no ``[targets]`` in the policy file there is one target, ``default``: ``PGTENDER_DATABASE_URL``
or the embedded server, exactly as before. With ``[targets.NAME]`` each target's URL comes from an
environment variable of the process that runs the job (``url_env``) or a Prefect Secret block
(``url_secret``); the URL is registered for masking the moment it is read and is never logged,
rendered or written into a deployment. Every error here is bad input (``ConfigError``, exit 2) and
is raised before anything runs on any target: an unknown name, a variable or block that is
missing, a malformed URL, two targets that point at the same database (by their URLs, and by what
the servers say they are: ``flows.core.fleet.identity``, one round trip per target, in parallel).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import conninfo

from flows.core import db, masking, migrations
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.fleet import identity as identity_of
from flows.core.policy import settings

DEFAULT = "default"

Embedded = Callable[[Path], str]  # state directory -> the embedded server's DSN (started on demand)


@dataclass(frozen=True, kw_only=True)
class Target:
    """One database pgtender tends. ``dsn`` holds a secret: never log or render it (``repr`` hides it)."""

    name: str
    source: str  # where the URL comes from: "env:VAR", "secret:block", "PGTENDER_DATABASE_URL", "embedded"
    dsn: str = field(repr=False)
    policy: settings.Policy = field(repr=False)  # the file's policy with the target's overrides
    explicit: bool = False  # named by the caller (--target / the form), not part of a sweep
    configured: bool = False  # declared under [targets] (False: the implicit target `default`)

    def state_dir(self, base: Path) -> Path:
        """Where this target's files live (reports, Data Docs): a fleet's targets never mix."""
        return base / "targets" / self.name if self.configured else base


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def names(policy: settings.Policy) -> list[str]:
    return sorted(policy.targets) if policy.targets else [DEFAULT]


def _from_env(name: str, var: str) -> str:
    value = (os.environ.get(var) or "").strip()
    if not value:
        raise ConfigError(f"target {name!r}: environment variable {var} is not set (url_env)")
    return value


def _from_secret(name: str, block: str) -> str:
    import httpx  # noqa: PLC0415
    from prefect.blocks.system import Secret  # noqa: PLC0415 - only fleets with secrets need Prefect here

    try:
        loaded = cast("Secret[Any]", Secret.load(block))  # sync: no event loop in this thread
    except ValueError:
        raise ConfigError(
            f"target {name!r}: Prefect Secret block {block!r} does not exist (url_secret)"
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        raise InfrastructureError(
            f"target {name!r}: cannot read Prefect Secret block {block!r}: {exc}"
        ) from None
    value = loaded.get()
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"target {name!r}: Prefect Secret block {block!r} does not hold a URL string")
    return value.strip()


def url_identity(dsn: str) -> tuple[str, str, str]:
    """(host, port, database) as a connection string spells them: the same spelling is the same
    database even when it cannot be reached (``identity_of`` asks the servers for the rest)."""
    info = conninfo.conninfo_to_dict(dsn)
    host = str(info.get("host") or os.environ.get("PGHOST") or "localhost").lower()
    host = "loopback" if host in _LOOPBACK or host.startswith("/") else host
    port = str(info.get("port") or os.environ.get("PGPORT") or "5432")
    user = str(info.get("user") or os.environ.get("PGUSER") or "")
    dbname = str(info.get("dbname") or os.environ.get("PGDATABASE") or user)
    return host, port, dbname


def resolve_all(
    current_settings: settings.Settings, policy: settings.Policy, *, embedded: Embedded | None = None
) -> list[Target]:
    """Every target with its URL and policy; ConfigError (exit 2) when any cannot be used.
    ``embedded``: how to reach the embedded server when the single target has no URL."""
    if not policy.targets:
        source = "PGTENDER_DATABASE_URL" if current_settings.database_url is not None else "embedded"
        dsn = settings.dsn(current_settings, embedded=embedded)
        return [Target(name=DEFAULT, source=source, dsn=dsn, policy=policy)]
    found: list[Target] = []
    seen: dict[tuple[str, str, str], str] = {}
    for name, spec in sorted(policy.targets.items()):
        if spec.url_env is not None:
            source, dsn = f"env:{spec.url_env}", _from_env(name, spec.url_env)
        else:
            assert spec.url_secret is not None
            source, dsn = f"secret:{spec.url_secret}", _from_secret(name, spec.url_secret)
        try:
            db.check_dsn(dsn)  # registers the password for masking first
            where = url_identity(dsn)
        except (ConfigError, psycopg.ProgrammingError) as exc:
            raise ConfigError(f"target {name!r} ({source}): {exc}") from None
        if where in seen:
            raise ConfigError(_same(seen[where], name, "the same host, port and database in their URLs"))
        seen[where] = name
        found.append(
            Target(name=name, source=source, dsn=dsn, policy=policy.for_target(name), configured=True)
        )
    _one_target_per_database(found)
    return found


def _same(first: str, second: str, how: str) -> str:
    return (
        f"targets {first!r} and {second!r} point at the same database ({how}):"
        " one lock, ledger and set of results per database"
    )


def _one_target_per_database(found: list[Target]) -> None:
    """Two URLs that differ (a host alias, another address of the server) may still reach one
    database: ask each server which database it is (ConfigError when two targets share one)."""
    if len(found) < 2:
        return
    seen: dict[identity_of.Identity, str] = {}
    for target, ident in zip(found, identity_of.identify([t.dsn for t in found]), strict=True):
        if ident is None:
            continue
        if ident in seen:
            raise ConfigError(_same(seen[ident], target.name, "one server and database, two names"))
        seen[ident] = target.name


def select(
    name: str | None,
    current_settings: settings.Settings,
    policy: settings.Policy,
    *,
    embedded: Embedded | None = None,
) -> list[Target]:
    """The targets a run works on: ``name`` alone (explicit), or every target. Every target is
    resolved either way, so a broken entry anywhere is reported before anything runs."""
    everything = resolve_all(current_settings, policy, embedded=embedded)
    if name is None:
        return everything
    chosen = [t for t in everything if t.name == name]
    if not chosen:
        known = ", ".join(t.name for t in everything)
        raise ConfigError(f"unknown target {name!r}; targets: {known}")
    return [replace(chosen[0], explicit=True)]


def check_name(name: str | None, policy: settings.Policy) -> None:
    """ConfigError for a target name the policy does not know (no URL is read)."""
    if name is None:
        return
    known = names(policy)
    if name not in known:
        raise ConfigError(f"unknown target {name!r}; targets: {', '.join(known)}")


@dataclass(frozen=True, kw_only=True)
class TargetCheck:
    """What ``pgtender targets`` shows for one target (never its URL)."""

    name: str
    source: str
    reachable: bool
    role: str = "-"  # primary | replica
    version: str = "-"  # schema version applied / newest
    pending: int | None = None
    server: str = "-"
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.reachable and self.pending == 0 and not self.error


def check(target: Target) -> TargetCheck:
    """Connect once (READ ONLY) and report reachability, role and migration state."""
    try:
        conn = db.connect(
            target.dsn, policy=target.policy.database, application_name="pgtender-targets", name=target.name
        )
    except PgtenderError as exc:
        return TargetCheck(name=target.name, source=target.source, reachable=False, error=str(exc))
    try:
        with conn:
            conn.read_only = True
            role = "replica" if db.is_replica(conn) else "primary"
            rows = migrations.status(conn)
            server = str(conn.info.server_version // 10000) + "." + str(conn.info.server_version % 100)
    except psycopg.Error as exc:
        message = masking.mask_secrets(" ".join(str(exc).split()))
        return TargetCheck(name=target.name, source=target.source, reachable=True, error=message)
    applied = [r.version for r in rows if r.state == "applied"]
    pending = sum(1 for r in rows if r.state == "pending")
    changed = [r.version for r in rows if r.state == "changed"]
    return TargetCheck(
        name=target.name,
        source=target.source,
        reachable=True,
        role=role,
        version=f"{max(applied) if applied else 0}/{len(rows)}",
        pending=pending,
        server=server,
        error=f"migration(s) changed since applied: {changed}" if changed else "",
    )


__all__ = ["DEFAULT", "Target", "TargetCheck", "check", "resolve_all", "select"]
