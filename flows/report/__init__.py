"""The weekly quality report: one email on Monday morning about last week.

Built from ``data_quality_checks`` (quality suites and health checks), ``capacity_planning_metrics``
and the operation ledger:

- overall and per-suite pass rate of the week's expectations and the change from the week before
  (pass rate = passed / evaluated; skipped results are not evaluated, warnings are not passes);
- failing checks (failed or error) with their samples;
- a chart of the daily quality score per suite and a chart of table growth with projections;
- per job: runs, completed / failed / skipped / abandoned, and late runs (schedule firings with no run started
  within min(half the period, 30 min));
- health alerts raised (checks that failed, errored or warned, by number of 5-minute windows).

Weeks are ISO weeks. Quality results are per UTC day, so a week's quality is its seven UTC days;
the ledger and health alerts are instants, counted between Monday 00:00 and the next Monday 00:00
in the report's time zone (``report.timezone``, which also schedules the report).

The rendered report is always kept under ``<state dir>/reports/<week>/<run time>/`` (.eml, .html
with the charts embedded, .txt, PNGs) and as a Prefect artifact before it is sent; a send that
fails after its retries fails the run and loses nothing. ``dry_run`` renders and keeps, and sends
nothing.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from prefect import flow, task
from prefect.client.schemas.objects import State

from flows.core import clock, lifecycle, runtime, settings, targets
from flows.core.db import load_sql
from flows.core.errors import ConfigError, InfrastructureError, PgtenderError
from flows.core.forms import DryRun, IsoWeek, Recipients, TargetName
from flows.core.logs import get_logger
from flows.core.outcomes import Done, Outcome
from flows.core.schedules import Schedule, all_schedules
from flows.report import charts as report_charts
from flows.report import fleet as fleet_report
from flows.report import mail as report_email

Conn = psycopg.Connection[tuple[Any, ...]]
JOB = "report"
_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
TEMPLATES = "templates"
GROWTH_TABLES = 6  # tables drawn in the growth chart (the largest)
SIZE_HISTORY_DAYS = 56
SAMPLE_CHARS = 300


# ---------------------------------------------------------------- input


@dataclass(frozen=True)
class Week:
    label: str  # 2026-W47
    monday: date
    tz: str
    complete: bool

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=i) for i in range(7)]

    @property
    def start(self) -> datetime:
        """Monday 00:00 in the report's time zone."""
        return datetime.combine(self.monday, time(0), tzinfo=ZoneInfo(self.tz))

    @property
    def end(self) -> datetime:
        return datetime.combine(self.monday + timedelta(days=7), time(0), tzinfo=ZoneInfo(self.tz))

    @property
    def hours(self) -> int:
        """168, or 167 / 169 when the report's zone changes its clocks during the week."""
        # in UTC: between two datetimes of the same zone Python subtracts wall-clock times
        return round((self.end.astimezone(UTC) - self.start.astimezone(UTC)).total_seconds() / 3600)

    def ranges_text(self) -> str:
        """The UTC ranges the report counted: seven local days for job runs and alerts, seven UTC
        days for quality (its results are per UTC day)."""
        fmt = "%Y-%m-%d %H:%M"
        return (
            f"job runs and alerts {self.start.astimezone(UTC):{fmt}} to {self.end.astimezone(UTC):{fmt}} UTC"
            f" ({self.hours} h: Monday 00:00 to Monday 00:00 {self.tz}); quality by UTC day,"
            f" {self.days[0].isoformat()} to {self.days[-1].isoformat()}"
        )

    @property
    def utc_start(self) -> datetime:
        """Monday 00:00 UTC: quality results are per UTC day."""
        return datetime.combine(self.monday, time(0), tzinfo=UTC)

    @property
    def utc_end(self) -> datetime:
        return self.utc_start + timedelta(days=7)

    def previous(self) -> Week:
        return week_of(self.monday - timedelta(days=7), self.tz, complete=True)


def week_of(day: date, tz: str, *, complete: bool) -> Week:
    monday = day - timedelta(days=day.weekday())
    year, number, _ = monday.isocalendar()
    return Week(f"{year}-W{number:02d}", monday, tz, complete)


def parse_week(week: str | None, tz: str, *, now: datetime) -> Week:
    """``YYYY-Www`` (ISO week); default: the last complete week in ``tz``. Future weeks are refused."""
    local_today = now.astimezone(ZoneInfo(tz)).date()
    if week is None:
        return week_of(local_today - timedelta(days=7), tz, complete=True)
    match = _WEEK_RE.match(week.strip()) if isinstance(week, str) else None
    if match is None:
        raise ConfigError(f"week must be an ISO week like 2026-W47, got {week!r}")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ConfigError(f"week {week!r} does not exist (ISO years have 52 or 53 weeks)") from None
    found = week_of(monday, tz, complete=True)
    if found.start > now:
        raise ConfigError(f"week {week} has not started yet in {tz}")
    return Week(found.label, found.monday, tz, complete=found.end <= now)


def recipients_for(to: str | None, policy: settings.ReportPolicy, *, dry_run: bool) -> list[str]:
    if to is not None:
        return report_email.parse_recipients(to)
    if not policy.recipients and not dry_run:
        raise ConfigError("no recipients: set report.recipients in the policy or pass --to")
    return list(policy.recipients)


def validate_options(week: str | None = None, to: str | None = None, dry_run: bool = False) -> None:
    """Pre-flight check for ``pgtender run report``: bad input fails before any flow run starts."""
    policy = settings.current_policy()
    parse_week(week, policy.report.timezone, now=clock.now())
    recipients_for(to, policy.report, dry_run=dry_run)


# ---------------------------------------------------------------- data


@dataclass
class SuiteRate:
    suite: str
    passed: int = 0
    warning: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0

    @property
    def evaluated(self) -> int:
        return self.passed + self.warning + self.failed + self.error

    @property
    def rate(self) -> float | None:
        return None if self.evaluated == 0 else 100.0 * self.passed / self.evaluated

    def add(self, other: SuiteRate) -> None:
        self.passed += other.passed
        self.warning += other.warning
        self.failed += other.failed
        self.error += other.error
        self.skipped += other.skipped


@dataclass
class JobStats:
    job: str
    schedule: str | None
    runs: int = 0
    completed: int = 0
    problems: int = 0  # ran to the end and found problems (failed checks, failed views)
    failed: int = 0
    skipped: int = 0
    abandoned: int = 0  # died without finishing (found dead, or its session is gone)
    running: int = 0
    expected: int | None = None  # schedule firings in the week (up to now)
    late: int | None = None  # firings with no run started within the tolerance


@dataclass
class ReportData:
    week: Week
    previous: Week
    generated_at: datetime
    rates: dict[str, SuiteRate]
    previous_rates: dict[str, SuiteRate]
    daily_scores: list[dict[str, Any]]
    failing: list[dict[str, Any]]
    failing_total: int
    health_alerts: list[dict[str, Any]]
    jobs: list[JobStats]
    size_history: dict[str, list[tuple[date, float]]]
    projections: list[dict[str, Any]]
    threshold: float | None = None
    images: dict[str, str] = field(default_factory=dict)

    @property
    def overall(self) -> SuiteRate:
        return _total(self.rates)

    @property
    def previous_overall(self) -> SuiteRate:
        return _total(self.previous_rates)

    @property
    def change(self) -> float | None:
        now, before = self.overall.rate, self.previous_overall.rate
        return None if now is None or before is None else now - before

    @property
    def suites(self) -> list[str]:
        return sorted(set(self.rates) | set(self.previous_rates))


def _total(rates: Mapping[str, SuiteRate]) -> SuiteRate:
    total = SuiteRate("all suites")
    for rate in rates.values():
        total.add(rate)
    return total


def quality_rates(conn: Conn, start: datetime, end: datetime) -> dict[str, SuiteRate]:
    rows = conn.execute(
        load_sql("queries/report/quality_counts.sql"), {"start": start, "end": end}
    ).fetchall()
    return {r[0]: SuiteRate(r[0], *(int(v) for v in r[1:6])) for r in rows}


def _sample_text(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def failing_checks(conn: Conn, week: Week, limit: int) -> tuple[list[dict[str, Any]], int]:
    rows = conn.execute(
        load_sql("queries/report/failing_checks.sql"),
        {"start": week.utc_start, "end": week.utc_end, "limit": limit},
    ).fetchall()
    out = [
        {
            "day": r[0],
            "suite": r[1],
            "check": r[2],
            "target": r[3],
            "status": r[4],
            "unexpected_count": r[5],
            "unexpected_percent": r[6],
            "sample": _sample_text(r[7]),
            "expected": _sample_text(r[8]),
            "error": r[9] or "",
        }
        for r in rows
    ]
    return out, int(rows[0][10]) if rows else 0


def late_runs(
    starts: list[datetime], cron: str, tz: str, *, start: datetime, end: datetime, now: datetime
) -> tuple[int, int]:
    """(expected firings, late firings) of ``cron`` in [start, min(end, now - tolerance)).

    A firing is late when no run started between one minute before it and the tolerance after it
    (min(half the schedule's period, 30 minutes)).
    """
    schedule = Schedule(cron, tz)
    tolerance = min(schedule.period(start) / 2, timedelta(minutes=30))
    until = min(end, now - tolerance)
    ordered = sorted(starts)
    expected = late = 0
    for fire in schedule.fires_between(start, until):
        expected += 1
        i = bisect.bisect_left(ordered, fire - timedelta(minutes=1))
        if i >= len(ordered) or ordered[i] > fire + tolerance:
            late += 1
    return expected, late


def job_stats(
    conn: Conn, week: Week, schedules: Mapping[str, tuple[str, str]], *, now: datetime
) -> list[JobStats]:
    rows = conn.execute(
        load_sql("queries/report/ledger_runs.sql"), {"start": week.start, "end": week.end}
    ).fetchall()
    stats: dict[str, JobStats] = {}
    starts: dict[str, list[datetime]] = defaultdict(list)
    for job, status, started_at, _finished_at in rows:
        s = stats.setdefault(job, JobStats(job, schedules[job][0] if job in schedules else None))
        s.runs += 1
        if status == "started":
            s.running += 1
        else:
            setattr(s, status, getattr(s, status) + 1)
        starts[job].append(started_at)
    for job, (cron, tz) in schedules.items():
        s = stats.setdefault(job, JobStats(job, cron))
        s.expected, s.late = late_runs(starts[job], cron, tz, start=week.start, end=week.end, now=now)
    return [stats[j] for j in sorted(stats)]


def size_history(conn: Conn, week: Week) -> tuple[dict[str, list[tuple[date, float]]], list[dict[str, Any]]]:
    """The largest tables' daily sizes up to the week's end, and every newest projection."""
    end = week.end
    rows = conn.execute(
        load_sql("queries/report/size_history.sql"),
        {"since": end - timedelta(days=SIZE_HISTORY_DAYS), "end": end},
    ).fetchall()
    history: dict[str, list[tuple[date, float]]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for name, kind, day, value in rows:
        history[name].append((day, float(value)))
        kinds[name] = kind
    tables = sorted((n for n in history if kinds[n] == "table"), key=lambda n: (-history[n][-1][1], n))[
        :GROWTH_TABLES
    ]
    proj_rows = conn.execute(
        load_sql("queries/report/projections.sql"), {"since": end - timedelta(days=30), "end": end}
    ).fetchall()
    by_name: dict[str, dict[str, Any]] = {}
    for metric, kind, name, measured_at, value, threshold, projected_at, horizon in proj_rows:
        entry = by_name.setdefault(name, {"resource": name, "type": kind, "measured_at": measured_at})
        if metric == "total_bytes_growth_per_day":
            entry["growth_per_day"] = float(value)
        else:
            entry.update(
                projected=float(value),
                threshold=threshold,
                reaches_at=projected_at,
                horizon_days=horizon.days if horizon is not None else None,
            )
        if name in history:
            entry["size"] = history[name][-1][1]
    projections = sorted(
        by_name.values(), key=lambda e: (e["type"] != "database", -(e.get("size") or 0.0), e["resource"])
    )[: GROWTH_TABLES + 1]
    return {n: history[n] for n in tables}, projections


def gather(
    conn: Conn,
    week: Week,
    policy: settings.Policy,
    schedules: Mapping[str, tuple[str, str]],
    *,
    now: datetime,
) -> ReportData:
    previous = week.previous()
    failing, failing_total = failing_checks(conn, week, policy.report.failing_checks_max)
    scores = conn.execute(
        load_sql("queries/report/daily_scores.sql"), {"start": week.utc_start, "end": week.utc_end}
    ).fetchall()
    alerts = conn.execute(
        load_sql("queries/report/health_alerts.sql"), {"start": week.start, "end": week.end}
    ).fetchall()
    history, projections = size_history(conn, week)
    return ReportData(
        week=week,
        previous=previous,
        generated_at=now,
        rates=quality_rates(conn, week.utc_start, week.utc_end),
        previous_rates=quality_rates(conn, previous.utc_start, previous.utc_end),
        daily_scores=[
            {"day": r[0], "suite": r[1], "score": r[2], "status": r[3], "threshold": r[4]} for r in scores
        ],
        failing=failing,
        failing_total=failing_total,
        health_alerts=[
            {"check": r[0], "target": r[1], "status": r[2], "windows": r[3], "first": r[4], "last": r[5]}
            for r in alerts
        ],
        jobs=job_stats(conn, week, schedules, now=now),
        size_history=history,
        projections=projections,
        threshold=policy.quality.threshold,
    )


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
        png = report_charts.table_growth(data.size_history, growth)
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
    return f"{head} {pct(overall.rate)} passed{change}, {data.failing_total} failing check(s)"


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
) -> Rendered:
    """Gather, render and keep the report on disk (.eml, .html, .txt, PNGs); sends nothing."""
    data = gather(conn, week, policy, schedules, now=now)
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
        "failing_checks": data.failing_total,
        "health_alerts": sum(a["windows"] for a in data.health_alerts),
        "job_failures": sum(j.failed for j in data.jobs),
        "charts": len(images),
    }
    return Rendered(out, eml, out / "report.html", out / "report.txt", title, recipients, summary)


def schedules_for(policy: settings.Policy) -> dict[str, tuple[str, str]]:
    return {job: (s.cron, s.timezone) for job, s in all_schedules(policy).items()}


# ---------------------------------------------------------------- Prefect


@runtime.db_task("report-build", JOB)
def build_task(week_label: str, recipients: list[str], now_iso: str) -> dict[str, Any]:
    current = settings.load_settings()
    policy = settings.current_policy(current)
    now = datetime.fromisoformat(now_iso)
    week = parse_week(week_label, policy.report.timezone, now=now)
    with runtime.connection() as conn:
        rendered = build(
            conn,
            week,
            recipients,
            policy=policy,
            schedules=schedules_for(policy),
            state_dir=current.state_dir,
            now=now,
        )
    return {
        "directory": str(rendered.directory),
        "eml": str(rendered.eml),
        "html": str(rendered.html),
        "text": rendered.text.read_text(encoding="utf-8"),
        "subject": rendered.subject,
        **rendered.summary,
    }


def _smtp_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a send the SMTP server or the network refused; never bad input (no recipients)."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, InfrastructureError)


@task(name="report-send", retry_condition_fn=_smtp_transient, retry_jitter_factor=0.5)
def send_task(eml: str, recipients: list[str]) -> int:
    current = settings.load_settings()
    report_email.send(report_email.read_eml(Path(eml)), recipients, current)
    return len(recipients)


def report_run(run: lifecycle.Run, chosen: Week, recipients: list[str], dry_run: bool) -> Outcome:
    """The job's work inside the lifecycle: build, keep a copy as artifact, send."""
    from prefect.artifacts import create_markdown_artifact  # noqa: PLC0415

    log = get_logger(job=JOB)
    policy = run.policy
    built = build_task(chosen.label, recipients, run.started_at.isoformat())
    run.counts.update(
        {k: built[k] for k in ("pass_rate", "evaluated", "failing_checks", "health_alerts", "charts")}
    )
    create_markdown_artifact(
        key="weekly-report",
        markdown=(
            f"## {built['subject']}\n\nKept in `{built['directory']}` (report.eml, report.html).\n\n"
            f"```\n{built['text']}\n```\n"
        ),
        description=f"Weekly quality report {chosen.label}",
    )
    log.info("report rendered", week=chosen.label, directory=built["directory"], subject=built["subject"])
    result = {k: v for k, v in built.items() if k != "text"}
    if dry_run or not recipients:
        run.counts["sent"] = 0
        log.info("dry run: nothing sent", eml=built["eml"], html=built["html"])
        return Done(result={**result, "sent": 0, "dry_run": True}, message=f"report {chosen.label} written")
    sender = send_task.with_options(
        retries=policy.report.send_retries, retry_delay_seconds=policy.report.send_retry_delay_seconds
    )
    sent = sender(built["eml"], recipients)
    run.counts["sent"] = sent
    log.info("report sent", week=chosen.label, recipients=sent)
    return Done(
        result={**result, "sent": sent, "dry_run": False}, message=f"report {chosen.label} sent to {sent}"
    )


@flow(name="report", log_prints=False)
def report_flow(
    week: IsoWeek | None = None,
    to: Recipients | None = None,
    dry_run: DryRun = False,
    target: TargetName | None = None,
) -> State[Any]:
    """Render the weekly quality report and send it by email (dry run: keep the files only).

    Args:
        week: The week to report, as an ISO week YYYY-Www. Empty: the last complete week in the
            report's time zone.
        to: Comma-separated addresses instead of the policy's report.recipients.
        dry_run: Write the .eml and .html under the state directory; send nothing.
        target: The database (a [targets] name of the policy file). Empty: every target.
    """

    fleet_sweep = target is None and targets.is_fleet()
    fleet_policy = settings.current_policy()
    fleet_recipients: list[str] = []
    if fleet_sweep:  # one email over the fleet; bad recipients fail before any target is touched
        fleet_recipients = recipients_for(to, fleet_policy.report, dry_run=dry_run)

    def plan() -> lifecycle.Planned:  # in each target: its time zone, recipients and clock
        policy = settings.current_policy()
        with runtime.connection() as conn:  # the week and "complete" by the database's clock, as its rows
            now = clock.db_now(conn)
        chosen = parse_week(week, policy.report.timezone, now=now)
        recipients = recipients_for(to, policy.report, dry_run=dry_run)  # bad input: nothing written
        if fleet_sweep and (to is not None or policy.report.recipients == fleet_policy.report.recipients):
            recipients = []  # rendered and kept under the target's state directory; in the fleet email
        params = {"week": chosen.label, "recipients": len(recipients), "dry_run": dry_run}
        return lifecycle.Planned(work=lambda run: report_run(run, chosen, recipients, dry_run), params=params)

    state = lifecycle.run_flow(JOB, plan=plan, target=target)
    if fleet_sweep:
        results = lifecycle.last_sweep(JOB)
        labels = [r.outcome.result.get("week") for r in results if r.outcome is not None]
        label = week or next((w for w in labels if w), "unknown-week")
        try:
            fleet_report.deliver(label, results, fleet_recipients, send=not dry_run)
        except PgtenderError as exc:  # the targets' reports are kept; the fleet email failed
            return lifecycle.error_state(exc)
    return state
