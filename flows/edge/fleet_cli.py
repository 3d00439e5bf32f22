"""The fleet at the terminal: ``pgtender targets`` and ``--target`` for the commands that connect
directly (migrate, status, rollback, demo-data, cron)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flows.core import targets
from flows.core.errors import ConfigError, InfrastructureError, ProblemsFound
from flows.core.target_context import Target


def each_target(
    target: str | None, echo: Callable[[str], None], *, one: str | None = None
) -> Iterator[Target]:
    """The targets a command works on (``target`` or every one), each inside its own context;
    a header line per target when the policy names a fleet. ``one``: the command changes a single
    database and needs ``--target`` in a fleet (its text says why)."""
    chosen = targets.select(target)  # every target resolved first: bad input touches none
    fleet = any(t.configured for t in chosen)
    if one is not None and fleet and target is None:
        raise ConfigError(f"{one}: name the database with --target ({', '.join(t.name for t in chosen)})")
    for t in chosen:
        if fleet:
            echo(f"== target {t.name} ({t.source})")
        with targets.using(t):
            yield t


def targets_table(echo: Callable[[str], None]) -> None:
    """One line per target: reachable, role, schema version, server; exit 3 when one is down or
    broken, 1 when one has pending migrations (a finding), 0 otherwise. Never a URL."""
    checks = [targets.check(t) for t in targets.select(None)]
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
        raise ProblemsFound(f"target(s) with pending migrations (run pgtender migrate): {', '.join(pending)}")
