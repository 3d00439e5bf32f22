"""Upkeep: the maintenance PostgreSQL leaves to its operators (issue 24), daily inside a window.

- ``statistics``: ANALYZE of the partitioned parents autovacuum never analyzes (no statistics,
  partitions attached or detached, or their rows changed past a threshold since); the tables whose
  statistics are missing or stale, listed.
- ``indexes`` and ``rebuild``: invalid indexes paged and rebuilt (``REINDEX INDEX CONCURRENTLY``; a
  failed rebuild's leftover copy dropped), bloated btree indexes rebuilt above ``bloat_pct``, one at
  a time, under ``lock_timeout``, never outside the window; unused and duplicate indexes reported,
  never dropped.
- ``vacuum``: dead-tuple ratio and time since the last (auto)vacuum per table; autovacuum behind pages.
- ``window``: the window's arithmetic (wall clock of its zone, DST-aware, ``now`` as a parameter).
- ``survey`` (every read), ``results`` (check rows, measurements, alerts), ``summary``, ``run``
  (the pass in one call), ``flow`` (the job: its steps and ``SPEC``).
"""

from flows.upkeep.flow import SPEC, upkeep_run
from flows.upkeep.run import JOB, upkeep_pass

__all__ = ["JOB", "SPEC", "upkeep_pass", "upkeep_run"]
