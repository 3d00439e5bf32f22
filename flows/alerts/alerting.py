"""Pages from state transitions: one page per (target, check, subject) when it starts failing,
nothing while it keeps failing, one resolve when it clears.

A job that evaluates checks (health every 5 minutes, quality for yesterday, the lifecycle for a
run's infrastructure error) hands its observations to ``evaluate``. The state lives in the tended
database (``pgtender_alert_state``, migration 0012), so it survives restarts and is shared by every
worker; an evaluation of one (target, source) holds a transaction-level advisory lock, so two
runs never page twice. A page that could not be delivered (no channel reachable) stays due and is
retried by the next evaluation; a resolve likewise. Delivery counts when at least one channel
accepted the notice (a broken channel must not re-page the others every five minutes); every
failed delivery is logged with the channel's name, never its URL.

Why not Prefect automations: an automation reacts to one flow run's state (Failed, Crashed), not
to a check inside it. A health run with ten checks is one Failed run whether one check or five
failed, and the next run five minutes later is Failed again: an automation would page every five
minutes and could neither say which check started failing nor send a resolve when it clears.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from flows.alerts import channels as channel_io
from flows.alerts.notices import Delivery, Notice
from flows.core import clock
from flows.core.db import load_sql
from flows.core.logs import get_logger
from flows.core.policy.alerts import Channel
from flows.core.policy.settings import Policy

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class Observation:
    """One check as one evaluation saw it."""

    check_name: str
    subject: str = ""  # what it looked at: a table, a job ('' when the check is about the database)
    failing: bool
    observed: Any = None
    limit: str | None = None
    summary: str = ""  # one line: what is wrong
    next_command: str = ""  # what to run next


def evaluate(
    conn: Conn,
    source: str,
    observations: Sequence[Observation],
    *,
    target: str,
    policy: Policy,
    complete: bool = True,
    channels: Sequence[Channel] | None = None,
    flow_run_id: str | None = None,
) -> list[Delivery]:
    """Apply one evaluation's observations and send the notices it makes due.

    ``complete``: the observations cover every check of ``source`` (a health run): a check failing
    before and absent now has cleared. Otherwise (one quality suite) absent checks keep their state.
    Returns what was sent (or was due and could not be sent)."""
    chans = list(policy.alerts.channels if channels is None else channels)
    log = get_logger(source=source, target=target)
    key = {"target": target, "source": source}
    if not any(o.failing for o in observations):  # the usual run: one read when all is well
        (quiet,) = conn.execute(load_sql("queries/alerts/quiet.sql"), key).fetchone() or (False,)
        if quiet:
            return []
    now = clock.db_now(conn)
    deliveries: list[Delivery] = []
    with conn.transaction():
        conn.execute(load_sql("queries/alerts/lock.sql"), key)
        was_failing = {(c, s) for c, s in conn.execute(load_sql("queries/alerts/failing.sql"), key)}
        seen: set[tuple[str, str]] = set()
        for obs in observations:
            seen.add((obs.check_name, obs.subject))
            row = {
                **key,
                "check_name": obs.check_name,
                "subject": obs.subject,
                "now": now,
                "observed": Jsonb(obs.observed),
                "limit": obs.limit,
                "summary": obs.summary or None,
                "next_command": obs.next_command or None,
            }
            if obs.failing:
                conn.execute(load_sql("queries/alerts/fail.sql"), row)
                if (obs.check_name, obs.subject) not in was_failing:
                    log.warning("check started failing", check=obs.check_name, subject=obs.subject)
            elif (obs.check_name, obs.subject) in was_failing:
                conn.execute(load_sql("queries/alerts/clear.sql"), row)
                log.info("check cleared", check=obs.check_name, subject=obs.subject)
        if complete:
            for check_name, subject in sorted(was_failing - seen):
                conn.execute(
                    load_sql("queries/alerts/clear.sql"),
                    {
                        **key,
                        "check_name": check_name,
                        "subject": subject,
                        "now": now,
                        "observed": None,
                        "summary": None,
                    },
                )
                log.info("check cleared (no longer reported)", check=check_name, subject=subject)
        due = conn.execute(load_sql("queries/alerts/pending.sql"), key).fetchall()
        if not due:
            return []
        if not chans:  # nowhere to send: the state is kept, the notices stay due until a channel exists
            return []
        for r in due:
            notice = _notice(r, source, target, now, flow_run_id, policy)
            accepted = channel_io.deliver(notice, chans, from_address=policy.report.from_address)
            if accepted:
                mark = "mark_paged" if notice.event == "page" else "mark_resolved"
                conn.execute(
                    load_sql(f"queries/alerts/{mark}.sql"),
                    {**key, "check_name": notice.check_name, "subject": notice.subject, "at": now},
                )
            deliveries.append(Delivery(notice, bool(accepted), tuple(accepted)))
    return deliveries


def _notice(  # noqa: PLR0917 - one row and where it came from
    row: tuple[Any, ...],
    source: str,
    target: str,
    now: datetime,
    flow_run_id: str | None,
    policy: Policy,
) -> Notice:
    check_name, subject, state, since, observed, limit, summary, next_command, failures = row
    return Notice(
        event="page" if state == "failing" else "resolve",
        target=target,
        check_name=check_name,
        subject=subject,
        source=source,
        since=since,
        at=now,
        observed=observed,
        limit=limit,
        summary=summary or "",
        next_command=next_command or "",
        failures=failures,
        flow_run_id=flow_run_id,
        runbook=policy.alerts.runbook_url,
    )


def open_alerts(conn: Conn) -> list[dict[str, Any]]:
    """Every check failing now (``pgtender alerts status``)."""
    cur = conn.execute(load_sql("queries/alerts/open.sql"))
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def infrastructure(
    conn: Conn, job: str, error: str | None, *, target: str, policy: Policy, flow_run_id: str | None = None
) -> list[Delivery]:
    """A run of ``job`` ended in an infrastructure error (``error``) or got through (None)."""
    obs = Observation(
        check_name=f"job.{job}",
        failing=error is not None,
        observed=error,
        limit="no infrastructure error",
        summary=f"{job} failed: {error}" if error else f"{job} ran again",
        next_command=f"pgtender status  # is the database reachable? then: pgtender run {job}",
    )
    return evaluate(conn, f"job.{job}", [obs], target=target, policy=policy, flow_run_id=flow_run_id)


def counts(deliveries: Sequence[Delivery]) -> dict[str, int]:
    """Pages and resolves delivered, and notices that were due but could not be sent."""
    return {
        "pages": sum(1 for d in deliveries if d.delivered and d.notice.event == "page"),
        "resolves": sum(1 for d in deliveries if d.delivered and d.notice.event == "resolve"),
        "undelivered": sum(1 for d in deliveries if not d.delivered),
    }


def log_deliveries(deliveries: Iterable[Delivery], **context: Any) -> None:
    log = get_logger(**context)
    for d in deliveries:
        fields = {"alert": d.notice.event, "check": d.notice.what, "target": d.notice.target}
        if d.delivered:
            log.info("alert sent", channels=list(d.channels), **fields)
        else:
            log.warning("alert due, not delivered (no channel accepted it; retried next run)", **fields)


__all__ = [
    "Delivery",
    "Notice",
    "Observation",
    "counts",
    "evaluate",
    "infrastructure",
    "log_deliveries",
    "open_alerts",
]
