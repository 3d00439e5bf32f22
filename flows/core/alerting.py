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

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from flows.core import clock, settings, target_context
from flows.core.alerts_policy import Channel
from flows.core.db import load_sql
from flows.core.logs import get_logger

Conn = psycopg.Connection[tuple[Any, ...]]

DEFAULT_TARGET = "default"  # a single tended database; a fleet names each of its targets


def current_target() -> str:
    """The target the run works on (the fleet's sweep sets it per thread), else ``default``."""
    target = target_context.current()
    return target.name if target is not None else DEFAULT_TARGET


Event = Literal["page", "resolve", "test"]


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


@dataclass(frozen=True, kw_only=True)
class Notice:
    """What a channel receives."""

    event: Event
    target: str
    check_name: str
    subject: str
    source: str
    since: datetime
    at: datetime
    observed: Any = None
    limit: str | None = None
    summary: str = ""
    next_command: str = ""
    failures: int = 0
    flow_run_id: str | None = None
    runbook: str = "docs/runbook.md"

    @property
    def what(self) -> str:
        return f"{self.check_name}[{self.subject}]" if self.subject else self.check_name

    @property
    def dedup_key(self) -> str:
        """One incident per (target, check, subject): a resolve closes the page it follows."""
        key = f"pgtender/{self.target}/{self.what}"
        if len(key) <= 255:  # PagerDuty's limit
            return key
        return "pgtender/" + hashlib.sha256(key.encode()).hexdigest()

    @property
    def title(self) -> str:
        head = {"page": "FAILING", "resolve": "RESOLVED", "test": "TEST"}[self.event]
        return f"[pgtender] {head} {self.what} on {self.target}"

    def text(self) -> str:
        """The body as plain text: what, observed vs limit, since when, the command to run next."""
        lines = [self.title, ""]
        if self.summary:
            lines.append(self.summary)
        if self.event != "test":
            lines.append(f"observed: {_short(self.observed)}   limit: {self.limit or '-'}")
            since = self.since.isoformat(timespec="seconds")
            if self.event == "page":
                lines.append(f"failing since {since}")
            else:
                lines.append(f"cleared at {self.at.isoformat(timespec='seconds')} (failing since {since})")
        if self.next_command and self.event == "page":
            lines.append(f"next: {self.next_command}")
        lines.append(f"runbook: {self.runbook}")
        if self.flow_run_id:
            lines.append(f"flow run: {self.flow_run_id}")
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        """The JSON a webhook receives."""
        return {
            "event": self.event,
            "target": self.target,
            "check": self.check_name,
            "subject": self.subject,
            "source": self.source,
            "title": self.title,
            "summary": self.summary,
            "observed": self.observed,
            "limit": self.limit,
            "since": self.since.isoformat(),
            "at": self.at.isoformat(),
            "failures": self.failures,
            "next_command": self.next_command,
            "runbook": self.runbook,
            "flow_run_id": self.flow_run_id,
        }


def _short(value: Any) -> str:
    text = str(value) if value is not None else "-"
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class Delivery:
    notice: Notice
    delivered: bool  # at least one channel accepted it (or there is no channel to send to)
    channels: tuple[str, ...]  # the channels that accepted it


def evaluate(
    conn: Conn,
    source: str,
    observations: Sequence[Observation],
    *,
    target: str | None = None,
    complete: bool = True,
    channels: Sequence[Channel] | None = None,
    flow_run_id: str | None = None,
) -> list[Delivery]:
    """Apply one evaluation's observations and send the notices it makes due.

    ``complete``: the observations cover every check of ``source`` (a health run): a check failing
    before and absent now has cleared. Otherwise (one quality suite) absent checks keep their state.
    Returns what was sent (or was due and could not be sent)."""
    target = target or current_target()
    policy = settings.current_policy()
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
        from flows.core import channels as channel_io  # noqa: PLC0415 - only when something is due

        for r in due:
            notice = _notice(r, source, target, now, flow_run_id, policy)
            accepted = channel_io.deliver(notice, chans)
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
    policy: settings.Policy,
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
    conn: Conn, job: str, error: str | None, *, target: str | None = None, flow_run_id: str | None = None
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
    return evaluate(conn, f"job.{job}", [obs], target=target, flow_run_id=flow_run_id)


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
