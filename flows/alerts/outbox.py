"""Delivering the notices that are due: bounded, and exactly-once-looking.

The outbox is the alert state itself: a failing check whose page has not gone out, a cleared check
whose resolve has not (``due.sql``). Each was recorded, in its own commit, before anything is sent
(``alerting.record``). A delivery round, run after the job's run (outside its lock and any
transaction), takes each due notice in turn:

1. claim it: a session-level advisory lock on (target, check, subject), held while it is sent; a
   notice another process is sending is left to that process;
2. read it again (someone may have delivered it meanwhile), send it on every channel, each send
   bounded by its channel's deadline (connect, send and the whole answer: ``http.post_json``);
3. mark it sent (``paged_at`` / ``resolved_at``): its own commit; release the claim.

A process killed between 2 and 3 loses its session, and the claim with it: the next round (the next
health run, five minutes later, at the latest) sends the notice again, with the same ``dedup_key``
and ``delivery_key``, which receivers deduplicate on; it never silences that round. A channel that
fails is not tried again in the same round (a hanging receiver costs one deadline, not one per
notice), and a round stops starting new deliveries once ``[alerts] delivery_budget_seconds`` is
spent: what is left stays due for the next round.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from flows.alerts import channels as channel_io
from flows.alerts.notices import Delivery, Notice
from flows.core import clock
from flows.core.db import load_sql
from flows.core.logs import get_logger
from flows.core.policy.alerts import Channel
from flows.core.policy.settings import Policy

Conn = psycopg.Connection[tuple[Any, ...]]


def drain(
    conn: Conn,
    *,
    target: str,
    policy: Policy,
    source: str | None = None,
    channels: Sequence[Channel] | None = None,
    flow_run_id: str | None = None,
) -> list[Delivery]:
    """Deliver what is due on ``target`` (of ``source``, or every source). ``conn`` must be in
    autocommit: each mark is its own commit and no transaction is open while a notice is sent."""
    if not conn.autocommit:
        raise ValueError("outbox.drain needs an autocommit connection (no transaction around a send)")
    chans = list(policy.alerts.channels if channels is None else channels)
    rows = conn.execute(load_sql("queries/alerts/due.sql"), {"target": target, "source": source}).fetchall()
    if not rows or not chans:  # nowhere to send: the notices stay due until a channel exists
        return []
    now = clock.db_now(conn)
    ends = time.monotonic() + policy.alerts.delivery_budget_seconds
    down: set[str] = set()  # channels that failed in this round: not tried again in it
    out: list[Delivery] = []
    for row in rows:
        if time.monotonic() >= ends or down >= {c.name for c in chans}:
            out.append(Delivery(_notice(row, target, now, flow_run_id, policy), False, ()))
            continue
        delivered = _deliver_one(
            conn, row, chans, down, target=target, now=now, flow_run_id=flow_run_id, policy=policy
        )
        if delivered is not None:
            out.append(delivered)
    left = sum(1 for d in out if not d.delivered)
    if left and time.monotonic() >= ends:
        get_logger(target=target).warning(
            "alert delivery budget spent: the rest stays due for the next round",
            budget_seconds=policy.alerts.delivery_budget_seconds,
            undelivered=left,
        )
    return out


def _deliver_one(
    conn: Conn,
    row: tuple[Any, ...],
    chans: list[Channel],
    down: set[str],
    *,
    target: str,
    now: datetime,
    flow_run_id: str | None,
    policy: Policy,
) -> Delivery | None:
    """Claim, re-read, send, mark, release; None when another process has it (or it is done)."""
    key = {"target": target, "check_name": row[1], "subject": row[2]}
    claimed = conn.execute(load_sql("queries/alerts/claim.sql"), key).fetchone()
    if not claimed or not claimed[0]:
        return None
    try:
        fresh = conn.execute(load_sql("queries/alerts/still_due.sql"), key).fetchone()
        if fresh is None:
            return None
        notice = _notice(fresh, target, now, flow_run_id, policy)
        attempt = channel_io.deliver(notice, chans, from_address=policy.report.from_address, skip=down)
        down.update(attempt.failed)
        if attempt.accepted:
            mark = "mark_paged" if notice.event == "page" else "mark_resolved"
            conn.execute(load_sql(f"queries/alerts/{mark}.sql"), {**key, "at": now})
        return Delivery(notice, bool(attempt.accepted), tuple(attempt.accepted))
    finally:
        if not conn.closed:
            conn.execute(load_sql("queries/alerts/unclaim.sql"), key)


def _notice(
    row: tuple[Any, ...], target: str, now: datetime, flow_run_id: str | None, policy: Policy
) -> Notice:
    source, check_name, subject, state, since, observed, limit, summary, next_command, failures = row
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
