"""The engine's context as pgtender's entry points build it: the registry of jobs, this process's
settings and policy, the embedded server when no URL is set, the alerts layer after every run."""

from __future__ import annotations

import threading

from flows.alerts import hooks
from flows.core.engine import Orchestrator, RunContext
from flows.core.policy import settings
from flows.edge import embedded
from flows.registry import REGISTRY


def run_context(orchestrator: Orchestrator, stop: threading.Event | None = None) -> RunContext:
    """``stop``: set on SIGTERM (``flows.edge.signals``): the run stops at its next safe point."""
    current = settings.load_settings()
    return RunContext(
        stop=stop if stop is not None else threading.Event(),
        orchestrator=orchestrator,
        registry=REGISTRY,
        settings=current,
        policy=settings.current_policy(current),
        embedded=embedded.embedded_dsn,
        after=hooks.after_run,
        check=hooks.check_channels,
    )
