"""The engine's after-run hook, called once a target's run has ended and released its lock:

1. ``job.<job>``: an infrastructure error pages once, a run that finds an earlier run of its job dead
   (killed, its worker lost) pages that crash, the next run that gets through resolves. Bad input
   neither pages nor resolves.
2. The target's outbox is delivered: every notice due there (the health or quality checks this run
   recorded, anything an earlier round left), outside the job's lock and any transaction, each
   bounded by its channel's deadline (``outbox``): a slow receiver never holds the job's lock.
3. When the tended database itself is unreachable, the ``job.<job>`` page still goes out, once per
   outage whichever worker runs the job, its state in a store every worker shares (``offline``:
   the Prefect server under Prefect, a file on this machine without it); the first run that reaches
   the database again sends the resolve.

Never raises: an alert that cannot be evaluated is a warning in the log, not a second failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import psycopg

from flows.alerts import alerting, offline, outbox
from flows.alerts.notices import Delivery
from flows.core import db
from flows.core.engine import Finished
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.ledger import Abandoned
from flows.core.logs import get_logger
from flows.core.policy.alerts import resolve_secret
from flows.core.policy.settings import Policy


def crash_line(job: str, abandoned: Sequence[Abandoned]) -> str | None:
    """What a crash page says: the (first) dead run of ``job``, when it started, who found it."""
    if not abandoned:
        return None
    gone = abandoned[0]
    more = f" (+{len(abandoned) - 1} more)" if len(abandoned) > 1 else ""
    return (
        f"the {job} run started {gone.started_at.isoformat(timespec='seconds')} crashed"
        f" (its process or worker died){more}: {gone.reason}"
    )


def check_channels(policy: Policy) -> None:
    """Before a run touches anything: every channel's environment variables are set (README: a bad
    channel is one line, exit 2), not found missing when the run's first page is due."""
    for channel in policy.alerts.channels:
        for env in channel.env_names:
            resolve_secret(channel, env)


def after_run(finished: Finished) -> None:
    """Evaluate ``job.<job>`` after one target's run and deliver the target's due notices."""
    error = finished.result.error
    if isinstance(error, ConfigError):
        return
    job, target = finished.job, finished.target
    infra = str(error) if isinstance(error, InfrastructureError) else None
    log = get_logger(job=job, target=target.name)
    try:
        sent = _in_database(finished, infra)
    except (psycopg.Error, PgtenderError, OSError) as exc:
        if infra is None:
            log.warning("could not evaluate the job's alert", error=" ".join(str(exc).split()))
            return
        _unreachable(finished, infra)
        return
    alerting.log_deliveries(sent, job=job)
    if infra is None:
        _reachable(finished)


def _in_database(finished: Finished, infra: str | None) -> list[Delivery]:
    """``job.<job>`` recorded in the target's database, then its outbox delivered."""
    job, target = finished.job, finished.target
    source = f"job.{job}"
    sent: list[Delivery] = []
    with db.pooled(
        target.dsn, policy=target.policy.database, application_name="pgtender-alerts", name=target.name
    ) as conn:
        crash = crash_line(job, finished.abandoned)
        if crash is not None and infra is None:  # page the crash once (now: this run resolves it next)
            sent += alerting.infrastructure(
                conn, job, crash, target=target.name, policy=target.policy, flow_run_id=finished.flow_run_id
            )
        alerting.record(conn, source, [alerting.job_observation(job, infra)], target=target.name)
        sent += outbox.drain(conn, target=target.name, policy=target.policy, flow_run_id=finished.flow_run_id)
    return sent


def _prefect_api() -> bool:
    """Is there a Prefect API (without importing Prefect into a process that has not)?"""
    if os.environ.get("PREFECT_API_URL"):
        return True
    loaded = sys.modules.get("prefect.settings")
    return loaded is not None and bool(loaded.PREFECT_API_URL.value())


def _stores(finished: Finished) -> list[offline.Store]:
    shared = finished.flow_run_id is not None or _prefect_api()
    return offline.stores(finished.state_dir, shared=shared)


def _unreachable(finished: Finished, infra: str) -> None:
    """The database is unreachable: page once per outage, in the first store that answers."""
    log = get_logger(job=finished.job, target=finished.target.name)
    for store in _stores(finished):
        try:
            sent = offline.page(
                store,
                job=finished.job,
                target=finished.target.name,
                policy=finished.target.policy,
                error=infra,
                flow_run_id=finished.flow_run_id,
            )
        except offline.STORE_ERRORS as exc:  # nothing was sent: the next store pages instead
            log.warning("alert state store unreachable, trying the next", error=" ".join(str(exc).split()))
            continue
        if sent is not None:
            alerting.log_deliveries([sent], job=finished.job)
        return


def _reachable(finished: Finished) -> None:
    """The database answered: resolve an outage page wherever it was recorded."""
    log = get_logger(job=finished.job, target=finished.target.name)
    for store in _stores(finished):
        try:
            sent = offline.resolve(
                store, job=finished.job, target=finished.target.name, policy=finished.target.policy
            )
        except offline.STORE_ERRORS as exc:
            log.warning("alert state store unreachable", error=" ".join(str(exc).split()))
            continue
        if sent is not None:
            alerting.log_deliveries([sent], job=finished.job)
