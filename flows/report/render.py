"""The report rendered: charts, HTML and text, the .eml, the files kept under the state directory."""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from flows.core.policy import settings
from flows.report import charts as report_charts
from flows.report import mail as report_email
from flows.report.data import ReportData, gather
from flows.report.week import Week

Conn = psycopg.Connection[tuple[Any, ...]]
TEMPLATES = "templates"


# ---------------------------------------------------------------- rendering


def charts(data: ReportData) -> list[report_email.InlineImage]:
    """The PNG charts the data supports (none when there is nothing to draw)."""
    out: list[report_email.InlineImage] = []
    by_suite: dict[str, dict[date, float]] = defaultdict(dict)
    for row in data.daily_scores:
        if row["score"] is not None:
            by_suite[row["suite"]][row["day"]] = float(row["score"])
    if by_suite:
        png = report_charts.quality_scores(data.week.days, by_suite, threshold=data.threshold)
        out.append(report_email.new_image("quality_scores.png", png))
    if data.size_history:
        growth = {p["resource"]: p["growth_per_day"] for p in data.projections if "growth_per_day" in p}
        png = report_charts.table_growth(data.size_history, growth, week=data.week.days)
        out.append(report_email.new_image("table_growth.png", png))
    return out


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    step = 1024.0
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < step or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= step
    return f"{size:.1f} TiB"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def points(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} pts"


def subject(data: ReportData, prefix: str) -> str:
    overall = data.overall
    head = f"{prefix} Data quality {data.week.label}:".strip()
    if overall.rate is None:
        return f"{head} no quality results"
    change = "" if data.change is None else f" ({points(data.change)} vs {data.previous.label})"
    days = len(data.validated_days)
    coverage = "" if days == len(data.week.days) else f" on {days} of {len(data.week.days)} days"
    return f"{head} {pct(overall.rate)} passed{coverage}{change}, {data.failing_total} failing check(s)"


def _environment() -> Any:
    import jinja2  # noqa: PLC0415 - only the report renders templates

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flows.report", TEMPLATES),
        # *.html.j2 autoescape; the text template is plain text, never parsed as markup
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(bytes=human_bytes, pct=pct, points=points)
    env.globals.update(growth_title=report_charts.growth_title)
    return env


def render(data: ReportData, images: list[report_email.InlineImage], *, inline: bool) -> tuple[str, str]:
    """(HTML, text). ``inline``: images as data: URIs (a standalone file) instead of cid: (email)."""
    sources = {
        img.name: (
            f"data:image/png;base64,{base64.b64encode(img.png).decode()}" if inline else f"cid:{img.cid}"
        )
        for img in images
    }
    context = {"d": data, "images": sources, "tz": data.week.tz}
    env = _environment()
    html = env.get_template("report.html.j2").render(context)
    text = env.get_template("report.txt.j2").render(context)
    return html, text


def output_dir(state_dir: Path, week: Week, now: datetime) -> Path:
    path = state_dir / "reports" / week.label / now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Rendered:
    directory: Path
    eml: Path
    html: Path
    text: Path
    subject: str
    recipients: list[str]
    summary: dict[str, Any]


def build(
    conn: Conn,
    week: Week,
    recipients: list[str],
    *,
    policy: settings.Policy,
    schedules: Mapping[str, tuple[str, str]],
    state_dir: Path,
    now: datetime,
    exclude: UUID | None = None,
) -> Rendered:
    """Gather, render and keep the report on disk (.eml, .html, .txt, PNGs); sends nothing.
    ``now``: the instant the report is generated at (nothing after it is shown); ``exclude``: the
    report's own run (not counted: it has not ended)."""
    data = gather(conn, week, policy, schedules, now=now, exclude=exclude)
    images = charts(data)
    html_cid, text = render(data, images, inline=False)
    html_file, _ = render(data, images, inline=True)
    title = subject(data, policy.report.subject_prefix)
    msg = report_email.build_message(
        subject=title,
        sender=policy.report.from_address,
        recipients=recipients,
        text=text,
        html=html_cid,
        images=images,
    )
    out = output_dir(state_dir, week, now)
    for img in images:
        (out / img.name).write_bytes(img.png)
    (out / "report.html").write_text(html_file, encoding="utf-8")
    (out / "report.txt").write_text(text, encoding="utf-8")
    eml = report_email.write_eml(msg, out / "report.eml")
    overall = data.overall
    summary = {
        "week": week.label,
        "range_utc": [week.start.astimezone(UTC).isoformat(), week.end.astimezone(UTC).isoformat()],
        "hours": week.hours,
        "pass_rate": None if overall.rate is None else round(overall.rate, 2),
        "change_pts": None if data.change is None else round(data.change, 2),
        "evaluated": overall.evaluated,
        "validated_days": len(data.validated_days),
        "coverage": data.coverage,
        "failing_checks": data.failing_total,
        "health_alerts": sum(a["windows"] for a in data.health_alerts),
        "job_failures": sum(j.failed for j in data.jobs),
        "charts": len(images),
    }
    return Rendered(out, eml, out / "report.html", out / "report.txt", title, recipients, summary)
