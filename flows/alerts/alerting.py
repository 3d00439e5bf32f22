"""Pages from state transitions: one page per (target, check, subject) when it starts failing,
nothing while it keeps failing, one resolve when it clears.

A job that evaluates checks (health every 5 minutes, quality for yesterday) ``record``s its
observations from a step: one short transaction applies them to the alert state in the tended
database (``pgtender_alert_state``, migration 0012), under a transaction-level advisory lock per
(target, source), and commits. The notices that became due (a failing check not paged yet, a cleared
check whose page went out) are the target's outbox: ``outbox.drain`` delivers them after the run,
outside the job's lock and any transaction, each marked sent in its own commit (see ``outbox``).
A page that could not be delivered stays due and is retried by the next round; a resolve likewise.
Delivery counts when at least one channel accepted the notice (a broken channel must not re-page
the others every five minutes); every failed delivery is logged with the channel's name, never its
URL. ``evaluate`` is both at once (the after-run hook; upkeep before its rebuilds).

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

from flows.alerts import outbox
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


def record(
    conn: Conn,
    source: str,
    observations: Sequence[Observation],
    *,
    target: str,
    complete: bool = True,
) -> dict[str, int]:
    """Apply one evaluation's observations to the alert state (one short transaction: its own
    commit) and return how many notices of ``source`` are now due (``pages_due``, ``resolves_due``).
    Nothing is sent here: the due notices are the target's outbox, delivered by ``outbox.drain``
    outside any job lock or transaction.

    ``complete``: the observations cover every check of ``source`` (a health run): a check failing
    before and absent now has cleared. Otherwise (one quality suite) absent checks keep their state."""
    log = get_logger(source=source, target=target)
    key = {"target": target, "source": source}
    if not any(o.failing for o in observations):  # the usual run: one read when all is well
        (quiet,) = conn.execute(load_sql("queries/alerts/quiet.sql"), key).fetchone() or (False,)
        if quiet:
            return {"pages_due": 0, "resolves_due": 0}
    now = clock.db_now(conn)
    with conn.transaction():
        conn.execute(load_sql("queries/alerts/lock.sql"), key)
        was_failing = {(c, s) for c, s in conn.execute(load_sql("queries/alerts/failing.sql"), key)}
        seen: set[tuple[str, str]] = set()
        for obs in observations:
            seen.add((obs.check_name, obs.subject))
            _apply(conn, obs, key, now, was_failing=(obs.check_name, obs.subject) in was_failing)
        if complete:
            for check_name, subject in sorted(was_failing - seen):
                cleared = {**key, "check_name": check_name, "subject": subject, "now": now}
                conn.execute(
                    load_sql("queries/alerts/clear.sql"), {**cleared, "observed": None, "summary": None}
                )
                log.info("check cleared (no longer reported)", check=check_name, subject=subject)
        due = conn.execute(load_sql("queries/alerts/due.sql"), key).fetchall()
    pages = sum(1 for r in due if r[3] == "failing")
    return {"pages_due": pages, "resolves_due": len(due) - pages}


def _apply(conn: Conn, obs: Observation, key: dict[str, str], now: datetime, *, was_failing: bool) -> None:
    log = get_logger(source=key["source"], target=key["target"])
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
        if not was_failing:
            log.warning("check started failing", check=obs.check_name, subject=obs.subject)
    elif was_failing:
        conn.execute(load_sql("queries/alerts/clear.sql"), row)
        log.info("check cleared", check=obs.check_name, subject=obs.subject)


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
    """``record`` the observations, then deliver the notices of ``source`` that are due (the after-run
    hook, tests; and upkeep's invalid indexes, paged before its rebuilds start: the one delivery
    inside a job's run, bounded like every round). ``conn``: autocommit. Returns what was sent (or
    was due and could not be sent)."""
    record(conn, source, observations, target=target, complete=complete)
    return outbox.drain(
        conn, target=target, policy=policy, source=source, channels=channels, flow_run_id=flow_run_id
    )


def open_alerts(conn: Conn) -> list[dict[str, Any]]:
    """Every check failing now (``pgtender alerts status``)."""
    cur = conn.execute(load_sql("queries/alerts/open.sql"))
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def job_observation(job: str, error: str | None) -> Observation:
    """``job.<job>``: a run of ``job`` ended in an infrastructure error (``error``) or got through."""
    return Observation(
        check_name=f"job.{job}",
        failing=error is not None,
        observed=error,
        limit="no infrastructure error",
        summary=f"{job} failed: {error}" if error else f"{job} ran again",
        next_command=f"pgtender status  # is the database reachable? then: pgtender run {job}",
    )


def infrastructure(
    conn: Conn, job: str, error: str | None, *, target: str, policy: Policy, flow_run_id: str | None = None
) -> list[Delivery]:
    """Record and deliver ``job.<job>`` now (see ``job_observation``)."""
    obs = job_observation(job, error)
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
    "job_observation",
    "log_deliveries",
    "open_alerts",
    "record",
]
