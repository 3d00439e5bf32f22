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

from pathlib import Path
from typing import Any

from pydantic import Field

from flows.core import markdown
from flows.core.engine import Cron, Done, JobSpec, Outcome, Params, Plan, Planning, Run, RunReport, step
from flows.core.engine.forms import DryRun, IsoWeek, Recipients
from flows.core.errors import InfrastructureError, PgtenderError
from flows.core.logs import get_logger
from flows.core.policy import settings
from flows.report import fleet as fleet_report
from flows.report import mail as report_email
from flows.report.data import job_stats, late_runs
from flows.report.render import build
from flows.report.week import Week, parse_week, recipients_for, week_monday

JOB = "report"


def schedules_for(run: Run) -> dict[str, tuple[str, str]]:
    """Every job's schedule as (cron, time zone): what the report's lateness counts expect."""
    return {job: (s.cron, s.timezone) for job, s in run.registry.schedules(run.policy).items()}


@step("report-build")
def build_step(run: Run, week: Week, recipients: list[str]) -> dict[str, Any]:
    with run.connection() as conn:
        rendered = build(
            conn,
            week,
            recipients,
            policy=run.policy,
            schedules=schedules_for(run),
            state_dir=run.state_dir,
            now=run.started_at,
            exclude=run.operation_id,
        )
    return {
        "directory": str(rendered.directory),
        "eml": str(rendered.eml),
        "html": str(rendered.html),
        "text": rendered.text.read_text(encoding="utf-8"),
        "subject": rendered.subject,
        **rendered.summary,
    }


def _smtp_transient(exc: BaseException) -> bool:
    """Retry a send the SMTP server or the network refused; never bad input (no recipients)."""
    return isinstance(exc, InfrastructureError)


@step("report-send", retries=0, retry_on=_smtp_transient)
def send_step(run: Run, eml: str, recipients: list[str]) -> int:
    report_email.send(report_email.read_eml(Path(eml)), recipients, run.context.settings)
    return len(recipients)


def artifact_markdown(subject: str, directory: str, text: str) -> str:
    """The weekly-report artifact: the subject and where the files are (escaped), the text verbatim."""
    kept = markdown.text(f"Kept in {directory} (report.eml, report.html).")
    return f"## {markdown.text(subject)}\n\n{kept}\n\n{markdown.code_block(text)}\n"


def report_run(run: Run, chosen: Week, recipients: list[str], dry_run: bool) -> Outcome:
    """The job's work: build, keep a copy as artifact, send."""
    log = get_logger(job=JOB)
    policy = run.policy
    built = build_step(run, chosen, recipients)
    run.record(
        **{k: built[k] for k in ("pass_rate", "evaluated", "failing_checks", "health_alerts", "charts")}
    )
    run.artifact(
        "markdown",
        key="weekly-report",
        markdown=artifact_markdown(built["subject"], built["directory"], built["text"]),
        description=f"Weekly quality report {chosen.label}",
    )
    log.info("report rendered", week=chosen.label, directory=built["directory"], subject=built["subject"])
    result = {k: v for k, v in built.items() if k != "text"}
    where = f"{built['html']} (and report.eml, report.txt)"
    if built.get("coverage"):  # how much of the week the quality results cover, said at the terminal too
        where = f"quality {built['coverage']}; {where}"
    if dry_run or not recipients:
        run.record(sent=0)
        log.info("dry run: nothing sent", eml=built["eml"], html=built["html"])
        return Done(
            result={**result, "sent": 0, "dry_run": True},
            message=f"report {chosen.label} written, nothing sent: {where}",
        )
    sender = send_step.with_retries(policy.report.send_retries, policy.report.send_retry_delay_seconds)
    sent = sender(run, built["eml"], recipients)
    run.record(sent=sent)
    log.info("report sent", week=chosen.label, recipients=sent)
    return Done(
        result={**result, "sent": sent, "dry_run": False},
        message=f"report {chosen.label} sent to {sent} recipient(s): {where}",
    )


class ReportParams(Params):
    week: IsoWeek | None = Field(
        None,
        description="The week to report, as an ISO week YYYY-Www. Empty: the last complete week in the"
        " report's time zone.",
    )
    to: Recipients | None = Field(
        None, description="Comma-separated addresses instead of the policy's report.recipients."
    )
    dry_run: DryRun = Field(
        False, description="Write the .eml and .html under the state directory; send nothing."
    )


def check(policy: settings.Policy, params: ReportParams) -> None:
    """Before any target is touched: a week that does not exist; over a fleet (one email), bad
    recipients."""
    if params.week is not None:
        week_monday(params.week)
    if policy.targets:
        recipients_for(params.to, policy.report, dry_run=params.dry_run)


def plan_run(planning: Planning, params: ReportParams) -> Plan:
    """The week and "complete" by the database's clock, as its rows; the target's time zone and
    recipients. In a sweep over the fleet a target whose recipients are the fleet email's keeps its
    report (under its state directory) and sends nothing itself: the fleet email carries it."""
    policy = planning.policy
    chosen = parse_week(params.week, policy.report.timezone, now=planning.now)
    recipients = recipients_for(
        params.to, policy.report, dry_run=params.dry_run
    )  # bad input: nothing written
    sweep = planning.target.configured and not planning.target.explicit
    if sweep and (
        params.to is not None or policy.report.recipients == planning.file_policy.report.recipients
    ):
        recipients = []
    ledger_params = {"week": chosen.label, "recipients": len(recipients), "dry_run": params.dry_run}
    return Plan(work=lambda run: report_run(run, chosen, recipients, params.dry_run), params=ledger_params)


def after(report: RunReport, params: ReportParams, policy: settings.Policy, ctx: Any) -> RunReport:
    """A sweep over the fleet: one email with every target's report."""
    if not report.fleet:
        return report
    labels = [r.result.get("week") for r in report.results]
    label = params.week or next((w for w in labels if w), "unknown-week")
    recipients = recipients_for(params.to, policy.report, dry_run=params.dry_run)
    try:
        fleet_report.deliver(
            label, report.results, recipients, send=not params.dry_run, settings=ctx.settings, policy=policy
        )
    except PgtenderError as exc:  # the targets' reports are kept; the fleet email failed
        return RunReport(job=report.job, results=report.results, fleet=True, error=exc)
    return report


SPEC = JobSpec(
    name=JOB,
    description="Render the weekly quality report and send it by email (dry run: keep the files only).",
    params=ReportParams,
    plan=plan_run,
    schedule=Cron("0 8 * * 1", timezone=lambda policy: policy.report.timezone),
    tags=("quality",),
    check=check,
    after=after,
)


__all__ = ["JOB", "SPEC", "Week", "build", "job_stats", "late_runs", "parse_week", "recipients_for"]
