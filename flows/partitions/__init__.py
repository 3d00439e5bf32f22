"""Partition maintenance: keep ``premake`` future partitions, rescue rows parked in DEFAULT.

- ``plan``: the lock-free catalog read, DEFAULT rows per interval, what to create.
- ``create``: ``LIKE parent INCLUDING ALL`` + ``ATTACH`` (never ``PARTITION OF``, which takes
  ACCESS EXCLUSIVE on the parent), empty partitions batched per table.
- ``rescue``: DEFAULT rows moved one interval per transaction, counts checked at every step.
- ``maintain``: one table, and the whole job without Prefect (``run_once``).
- ``flow``: the Prefect flow and its per-table tasks.

Every transaction runs under ``lock_timeout`` with jittered retries (``flows.core.ddl``); a
timed-out try rolls back completely. A pass with nothing to do reads the catalog and counts DEFAULT:
no lock a writer could wait on.
"""

from flows.partitions.flow import partitions_flow, partitions_run, table_task
from flows.partitions.maintain import (
    JOB,
    TableResult,
    create_partitions,
    maintain_table,
    measurements,
    prepare,
    replay,
    run_once,
)
from flows.partitions.plan import Observed, Plan, Planned, default_buckets, observe, plan_table

__all__ = [
    "JOB",
    "Observed",
    "Plan",
    "Planned",
    "TableResult",
    "create_partitions",
    "default_buckets",
    "maintain_table",
    "measurements",
    "observe",
    "partitions_flow",
    "partitions_run",
    "plan_table",
    "prepare",
    "replay",
    "run_once",
    "table_task",
]
