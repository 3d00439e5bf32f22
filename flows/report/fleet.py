"""The weekly report over the fleet: one email with a summary table (a row per target), then each
target's report in turn. Each target's own report is still rendered (and kept) under its state
directory by the sweep; it is mailed on its own only to a target whose ``[targets.NAME.report]``
names recipients of its own — the file's recipients get this one email instead of one per target.
"""

from __future__ import annotations

import html
from datetime import UTC
from pathlib import Path
from typing import Any

from flows.core import clock
from flows.core.engine import TargetResult
from flows.core.policy.settings import Policy, Settings
from flows.report import mail as report_email

COLUMNS = (
    "target",
    "outcome",
    "pass rate %",
    "change pts",
    "failing checks",
    "health alerts",
    "job failures",
)


def _row(r: TargetResult) -> dict[str, str]:
    result: dict[str, Any] = r.outcome.result if r.outcome is not None else {}

    def show(key: str) -> str:
        value = result.get(key)
        return "-" if value is None else str(value)

    return {
        "target": r.target,
        "outcome": str(r.verdict.kind),
        "pass rate %": show("pass_rate"),
        "change pts": show("change_pts"),
        "failing checks": show("failing_checks"),
        "health alerts": show("health_alerts"),
        "job failures": show("job_failures"),
    }


def _details(r: TargetResult) -> str:
    result: dict[str, Any] = r.outcome.result if r.outcome is not None else {}
    directory = result.get("directory")
    text = Path(directory, "report.txt") if directory else None
    if text is not None and text.exists():
        return text.read_text(encoding="utf-8")
    return f"no report: {r.verdict.line}"


def render(week: str, results: list[TargetResult]) -> tuple[str, str]:
    """(text, html) of the fleet report."""
    rows = [_row(r) for r in results]
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in COLUMNS}
    table = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    table += ["  ".join(row[c].ljust(widths[c]) for c in COLUMNS) for row in rows]
    parts = [f"pgtender weekly report {week}: {len(results)} target(s)", "", *table]
    for r in results:
        parts += ["", f"==== {r.target} ====", _details(r)]
    text = "\n".join(parts) + "\n"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in COLUMNS) + "</tr>" for row in rows
    )
    details = "".join(
        f"<h2>{html.escape(r.target)}</h2><pre>{html.escape(_details(r))}</pre>" for r in results
    )
    page = (
        f"<html><body><h1>pgtender weekly report {html.escape(week)}</h1>"
        f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>{details}</body></html>"
    )
    return text, page


def deliver(
    week: str,
    results: list[TargetResult],
    recipients: list[str],
    *,
    send: bool,
    settings: Settings,
    policy: Policy,
) -> dict[str, Any]:
    """Write fleet.txt / fleet.html / fleet.eml under ``<state dir>/reports/<week>/<instant>-fleet/``
    (each target's own report is under ``<state dir>/targets/<name>/reports/``); send when asked."""
    current = settings
    text, page = render(week, results)
    out = current.state_dir / "reports" / week / f"{clock.now().astimezone(UTC):%Y%m%dT%H%M%SZ}-fleet"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.txt").write_text(text, encoding="utf-8")
    (out / "fleet.html").write_text(page, encoding="utf-8")
    msg = report_email.build_message(
        subject=f"{policy.report.subject_prefix} fleet quality report {week}: {len(results)} target(s)",
        sender=policy.report.from_address,
        recipients=recipients,
        text=text,
        html=page,
        images=[],
    )
    eml = report_email.write_eml(msg, out / "fleet.eml")
    sent = 0
    if send and recipients:
        report_email.send(msg, recipients, current)
        sent = len(recipients)
    return {"directory": str(out), "eml": str(eml), "sent": sent}
