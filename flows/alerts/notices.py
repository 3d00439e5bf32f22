"""What a channel receives: a ``Notice`` (page, resolve or test) and how its delivery went."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Event = Literal["page", "resolve", "test"]


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
    def delivery_key(self) -> str:
        """This notice, whoever sends it and however often: a delivery retried after a crash carries
        the same key (the webhook's ``Idempotency-Key``, the mail's Message-ID)."""
        raw = f"{self.dedup_key}|{self.event}|{self.since.isoformat()}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

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
            "dedup_key": self.dedup_key,  # one incident per (target, check, subject)
            "delivery_key": self.delivery_key,  # this notice: the same on a retry
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
