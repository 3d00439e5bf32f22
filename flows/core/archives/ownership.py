"""Who owns a partial file or object, and who may remove it.

Every partial carries its writer: ``<final name>.<owner>.partial`` (and a dump's data file
``<stem>.<stamp>.<owner>.copy.gz``, until a manifest names it), the owner ``op-<operation id>``
for a run in the ledger, ``run-<random>`` for anything else (a library call, a rollback's dump).
A run removes its own partials; another run's only when

- nobody holds it open (a directory's partial file is flock'ed by its writer while written), and
- the ledger says that run is over (any status but ``started``), or does not know it.

So a run that took over a job never deletes the file a still-running predecessor writes, and a dead
run's leftovers go as soon as its ledger row is closed (``abandoned`` by the next run's start).
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from uuid import UUID

import psycopg

from flows.core import ledger
from flows.core.archives.store import Store

Conn = psycopg.Connection[tuple[Any, ...]]

# <name>.<owner>.partial (any partial), <stem>.<stamp>.<owner>.copy.gz (a dump's data file)
_OWNED = re.compile(r"\.(?P<owner>(?:op|run)-[0-9a-f]{32})\.(?:partial|copy\.gz)$")


def new_owner(operation_id: UUID | None = None) -> str:
    """The token a run's partials carry: its ledger operation id, or a fresh random one."""
    if operation_id is not None:
        return f"op-{operation_id.hex}"
    return f"run-{uuid.uuid4().hex}"


def partial_name(final: str, owner: str) -> str:
    return f"{final}.{owner}.partial"


def owner_of(name: str) -> str | None:
    """The owner a partial's (or a data file's) name carries; None without one (older pgtender)."""
    found = _OWNED.search(name)
    return found["owner"] if found else None


def is_partial(name: str) -> bool:
    return name.endswith(".partial")


def _writer_is_over(conn: Conn, owner: str | None) -> bool:
    if owner is None or not owner.startswith("op-"):
        return True  # not a run of the ledger: nothing says it lives on once nobody writes its file
    status = ledger.run_status(conn, UUID(owner.removeprefix("op-")))
    return status != "started"


def removable(conn: Conn, store: Store, name: str, me: str) -> bool:
    """May run ``me`` remove the partial (or unreferenced data file) ``name``? Its own always;
    another's only when nobody is writing it and the ledger says its writer is over."""
    owner = owner_of(name)
    if owner == me:
        return True
    if store.in_use(name):
        return False
    return _writer_is_over(conn, owner)
