"""The lifecycle's alert: a job whose run ends in an infrastructure error pages once (check
``job.<job>``), and the next run that gets through resolves it.

The state lives in the tended database like every other alert. When that database is what failed
(unreachable), the page is still sent, and its state kept in a small file under the state
directory (``alerts/unreachable.json``) so that the next failing run does not page again; the first
run that reaches the database again sends the resolve and clears the file. Never raises: an alert
that cannot be evaluated is a warning in the log, not a second failure of the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from flows.core import alerting, settings
from flows.core.errors import PgtenderError
from flows.core.logs import get_logger


def _file() -> Path:
    return settings.load_settings().state_dir / "alerts" / "unreachable.json"


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


def after_run(
    job: str, error: str | None, *, target: str | None = None, flow_run_id: str | None = None
) -> None:
    """Evaluate ``job.<job>`` after a run: ``error`` is its infrastructure error, None when it got through."""
    target = target or alerting.current_target()
    log = get_logger(job=job)
    try:
        from flows.core.lifecycle import connection  # noqa: PLC0415 - the lifecycle imports this module

        with connection() as conn:
            sent = alerting.infrastructure(conn, job, error, target=target, flow_run_id=flow_run_id)
        alerting.log_deliveries(sent, job=job)
        if error is None:
            _resolve_offline(job, target)
    except (psycopg.Error, PgtenderError, OSError) as exc:
        if error is None:
            log.warning("could not evaluate the job's alert", error=" ".join(str(exc).split()))
            return
        _page_offline(job, target, error, flow_run_id)


def _page_offline(job: str, target: str, error: str, flow_run_id: str | None) -> None:
    """The database is unreachable: page once, remembered in a file."""
    from flows.core import channels, clock  # noqa: PLC0415

    if not settings.current_policy().alerts.channels:
        return
    path = _file()
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
        runbook=settings.current_policy().alerts.runbook_url,
    )
    accepted = channels.deliver(notice, list(settings.current_policy().alerts.channels))
    alerting.log_deliveries([alerting.Delivery(notice, bool(accepted), tuple(accepted))], job=job)
    if accepted:
        state[key] = now.isoformat()
        _write(path, state)


def _resolve_offline(job: str, target: str) -> None:
    from datetime import datetime  # noqa: PLC0415

    from flows.core import channels, clock  # noqa: PLC0415

    path = _file()
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
        runbook=settings.current_policy().alerts.runbook_url,
    )
    accepted = channels.deliver(notice, list(settings.current_policy().alerts.channels))
    alerting.log_deliveries([alerting.Delivery(notice, bool(accepted), tuple(accepted))], job=job)
    if accepted:
        del state[key]
        _write(path, state)
