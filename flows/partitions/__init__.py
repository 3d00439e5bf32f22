"""Partition maintenance: keep ``premake`` future partitions, rescue rows parked in DEFAULT.

- ``plan``: the lock-free catalog read, DEFAULT rows per interval, what to create.
- ``create``: ``LIKE parent INCLUDING ALL`` + ``ATTACH`` (never ``PARTITION OF``, which takes
  ACCESS EXCLUSIVE on the parent), empty partitions batched per table.
- ``rescue``: DEFAULT rows moved one interval per transaction, counts checked at every step.
- ``maintain``: one table, and every table for a backfill's replay (``maintain_all``).
- ``flow``: the job (``SPEC``): every table in one step of the engine's run.

Every transaction runs under ``lock_timeout`` with jittered retries (``flows.core.ddl``); a
timed-out try rolls back completely. A pass with nothing to do reads the catalog and counts DEFAULT:
no lock a writer could wait on.
"""

from flows.partitions.flow import SPEC, partitions_run, table_step
from flows.partitions.maintain import (
    JOB,
    TableResult,
    create_partitions,
    maintain_all,
    maintain_table,
    measurements,
    prepare,
    replay,
)
from flows.partitions.plan import Observed, Plan, Planned, default_buckets, observe, plan_table

__all__ = [
    "JOB",
    "SPEC",
    "Observed",
    "Plan",
    "Planned",
    "TableResult",
    "create_partitions",
    "default_buckets",
    "maintain_all",
    "maintain_table",
    "measurements",
    "observe",
    "partitions_run",
    "plan_table",
    "prepare",
    "replay",
    "table_step",
]
