"""The fleet at the terminal: ``pgtender targets`` and ``--target`` for the commands that connect
directly (migrate, status, rollback, demo-data, cron)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from flows.core import db, migrations
from flows.core.errors import ConfigError, DataProblem, InfrastructureError, PgtenderError
from flows.core.fleet import targets
from flows.core.fleet.targets import Target
from flows.core.policy import settings
from flows.edge import embedded


@contextlib.contextmanager
def connect_to(target: Target) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A direct autocommit connection to one target, for a command (errors name the target)."""
    conn = db.connect(
        target.dsn,
        policy=target.policy.database,
        application_name="pgtender-cli",
        autocommit=True,
        name=target.name,
    )
    with conn:
        yield conn


def select(target: str | None) -> list[Target]:
    """The targets a command works on (``target`` or every one), all resolved first."""
    current = settings.load_settings()
    return targets.select(target, current, settings.current_policy(current), embedded=embedded.embedded_dsn)


def each_target(
    target: str | None, echo: Callable[[str], None], *, one: str | None = None
) -> Iterator[Target]:
    """The targets a command works on (``target`` or every one); a header line per target when the
    policy names a fleet. ``one``: the command changes a single database and needs ``--target`` in a
    fleet (its text says why)."""
    chosen = select(target)  # every target resolved first: bad input touches none
    fleet = any(t.configured for t in chosen)
    if one is not None and fleet and target is None:
        raise ConfigError(f"{one}: name the database with --target ({', '.join(t.name for t in chosen)})")
    for t in chosen:
        if fleet:
            echo(f"== target {t.name} ({t.source})")
        yield t


def for_each_target(
    target: str | None, echo: Callable[[str], None], action: Callable[[Target], None]
) -> None:
    """``action`` on each target a command works on (``each_target``). In a fleet a target that
    fails is reported on its line and the command goes on with the others; then one error of the
    worst kind (its exit code) names each failed target. A single database: its error as it is."""
    chosen: list[Target] = []
    failed: dict[str, PgtenderError] = {}
    for t in each_target(target, echo):  # its header line, then its work
        chosen.append(t)
        try:
            action(t)
        except (PgtenderError, psycopg.Error) as exc:
            if not t.configured:  # no fleet: the one database's error as it is
                raise
            error = exc if isinstance(exc, PgtenderError) else _as_error(exc)
            failed[t.name] = error
            echo(f"target {t.name}: failed: {error}")
    if not failed:
        return
    worst = max(failed.values(), key=lambda e: e.exit_code)
    done = [t.name for t in chosen if t.name not in failed]
    detail = "; ".join(f"{name}: {e}" for name, e in failed.items())
    raise type(worst)(
        f"{len(failed)} of {len(chosen)} target(s) failed ({detail});"
        f" done on {', '.join(done) if done else 'none'}"
    )


def _as_error(exc: psycopg.Error) -> PgtenderError:
    return db.refused(exc) or InfrastructureError(f"database error: {' '.join(str(exc).split())}")


def targets_table(echo: Callable[[str], None]) -> None:
    """One line per target: reachable, role, schema version, server; exit 3 when one is down or
    broken, 1 when one has pending migrations (a finding), 0 otherwise. Never a URL."""
    checks = [targets.check(t) for t in select(None)]
    head = ("target", "source", "reachable", "role", "schema", "pending", "server", "problem")
    rows = [
        (
            c.name,
            c.source,
            "yes" if c.reachable else "no",
            c.role,
            c.version,
            "-" if c.pending is None else str(c.pending),
            c.server,
            c.error,
        )
        for c in checks
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    for line in (head, *rows):
        echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    down = [c.name for c in checks if not c.reachable or c.error]
    if down:
        raise InfrastructureError(f"target(s) not usable: {', '.join(down)}")
    pending = [c.name for c in checks if c.pending]
    if pending:
        raise DataProblem(f"target(s) with pending migrations (run pgtender migrate): {', '.join(pending)}")


def migrate_fleet(echo: Callable[[str], None]) -> int:
    """``pgtender up`` with ``[targets]``: migrate every target, one line each; a target that cannot
    be reached is said and skipped (the others are still prepared). Returns how many failed."""
    failed = 0
    for t in select(None):
        if not t.configured:
            return 0
        try:
            with db.connect(
                t.dsn, policy=t.policy.database, application_name="pgtender-up", autocommit=True, name=t.name
            ) as conn:
                steps = migrations.migrate(conn)
        except PgtenderError as exc:
            echo(f"target {t.name}: not prepared: {exc}")
            failed += 1
            continue
        newest = migrations.discover()[-1].version
        echo(f"target {t.name}: {len(steps)} migration(s) applied, at version {newest}")
    return failed
