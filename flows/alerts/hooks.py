"""The engine's after-run hook: a job whose run ends in an infrastructure error pages once (check
``job.<job>``), a run that finds an earlier run of its job dead (killed, its worker lost) pages that
crash, and the next run that gets through resolves it. Bad input neither pages nor resolves.

The state lives in the tended database like every other alert. When that database is what failed
(unreachable), the page is still sent, and its state kept in a small file under the target's state
directory (``alerts/unreachable.json``) so that the next failing run does not page again; the first
run that reaches the database again sends the resolve and clears the file. Never raises: an alert
that cannot be evaluated is a warning in the log, not a second failure of the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import psycopg

from flows.alerts import alerting, channels
from flows.core import clock, db
from flows.core.engine import Finished
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.ledger import Abandoned
from flows.core.logs import get_logger
from flows.core.policy.alerts import resolve_secret
from flows.core.policy.settings import Policy


def _file(state_dir: Path) -> Path:
    return state_dir / "alerts" / "unreachable.json"


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data:
        path.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    else:
        path.unlink(missing_ok=True)


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


def _crash_line(finished: Finished) -> str | None:
    return crash_line(finished.job, finished.abandoned)


def check_channels(policy: Policy) -> None:
    """Before a run touches anything: every channel's environment variables are set (README: a bad
    channel is one line, exit 2), not found missing when the run's first page is due."""
    for channel in policy.alerts.channels:
        for env in (channel.url_env, channel.integration_key_env, channel.api_key_env):
            if env is not None:
                resolve_secret(channel, env)


def after_run(finished: Finished) -> None:
    """Evaluate ``job.<job>`` after one target's run."""
    error = finished.result.error
    if isinstance(error, ConfigError):
        return
    job, target, policy = finished.job, finished.target, finished.target.policy
    infra = str(error) if isinstance(error, InfrastructureError) else None
    log = get_logger(job=job, target=target.name)
    try:
        with db.pooled(target.dsn, policy=policy.database, application_name="pgtender-alerts") as conn:
            crash = _crash_line(finished)
            sent = []
            if crash is not None and infra is None:  # page the crash once; this run got through: resolve
                sent += alerting.infrastructure(
                    conn, job, crash, target=target.name, policy=policy, flow_run_id=finished.flow_run_id
                )
            sent += alerting.infrastructure(
                conn, job, infra, target=target.name, policy=policy, flow_run_id=finished.flow_run_id
            )
        alerting.log_deliveries(sent, job=job)
        if infra is None:
            _resolve_offline(job, target.name, policy, finished.state_dir)
    except (psycopg.Error, PgtenderError, OSError) as exc:
        if infra is None:
            log.warning("could not evaluate the job's alert", error=" ".join(str(exc).split()))
            return
        _page_offline(
            job,
            target.name,
            policy,
            state_dir=finished.state_dir,
            error=infra,
            flow_run_id=finished.flow_run_id,
        )


def _page_offline(
    job: str, target: str, policy: Policy, *, state_dir: Path, error: str, flow_run_id: str | None
) -> None:
    """The database is unreachable: page once, remembered in a file."""
    if not policy.alerts.channels:
        return
    path = _file(state_dir)
    state = _read(path)
    key = f"{target}/job.{job}"
    if key in state:
        return
    now = clock.now()
    notice = alerting.Notice(
        event="page",
        target=target,
        check_name=f"job.{job}",
        subject="",
        source=f"job.{job}",
        since=now,
        at=now,
        observed=error,
        limit="no infrastructure error",
        summary=f"{job} failed and the database is unreachable: {error}",
        next_command=f"pgtender status  # is the database reachable? then: pgtender run {job}",
        flow_run_id=flow_run_id,
        runbook=policy.alerts.runbook_url,
    )
    accepted = channels.deliver(notice, list(policy.alerts.channels), from_address=policy.report.from_address)
    alerting.log_deliveries([alerting.Delivery(notice, bool(accepted), tuple(accepted))], job=job)
    if accepted:
        state[key] = now.isoformat()
        _write(path, state)


def _resolve_offline(job: str, target: str, policy: Policy, state_dir: Path) -> None:
    path = _file(state_dir)
    state = _read(path)
    key = f"{target}/job.{job}"
    if key not in state:
        return
    now = clock.now()
    notice = alerting.Notice(
        event="resolve",
        target=target,
        check_name=f"job.{job}",
        subject="",
        source=f"job.{job}",
        since=datetime.fromisoformat(state[key]),
        at=now,
        summary=f"{job} reached the database again",
        runbook=policy.alerts.runbook_url,
    )
    accepted = channels.deliver(notice, list(policy.alerts.channels), from_address=policy.report.from_address)
    alerting.log_deliveries([alerting.Delivery(notice, bool(accepted), tuple(accepted))], job=job)
    if accepted:
        del state[key]
        _write(path, state)
