"""The target a run works on (one database of the fleet), as a context variable.

Set by the lifecycle for each target of a sweep (each in its own thread, with its own copy of the
context) and by the CLI's ``--target``; ``settings.dsn()`` and ``settings.current_policy()`` read it,
so every job's plain code reaches the target's database and policy without knowing about fleets.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Target:
    """One database pgtender tends. ``dsn`` holds a secret: never log or render it (``repr`` hides it)."""

    name: str
    source: str  # where the URL comes from: "env:VAR", "secret:block", "PGTENDER_DATABASE_URL", "embedded"
    dsn: str = field(repr=False)
    policy: Any = field(repr=False)  # settings.Policy with the target's overrides
    explicit: bool = False  # named by the caller (--target / the form), not part of a sweep
    configured: bool = False  # declared under [targets] (False: the implicit target `default`)


_current: contextvars.ContextVar[Target | None] = contextvars.ContextVar("pgtender_target", default=None)


def current() -> Target | None:
    return _current.get()


@contextmanager
def using(target: Target) -> Iterator[Target]:
    """Within the block, pgtender's connections and policy are ``target``'s."""
    token = _current.set(target)
    try:
        yield target
    finally:
        _current.reset(token)
