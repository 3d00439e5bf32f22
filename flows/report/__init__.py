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

from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, task
from prefect.client.schemas.objects import State

from flows.core import clock, lifecycle, markdown, plain, runtime, settings, targets
from flows.core.errors import InfrastructureError, PgtenderError
from flows.core.forms import DryRun, IsoWeek, Recipients, TargetName
from flows.core.logs import get_logger
from flows.core.outcomes import Done, Outcome
from flows.report import fleet as fleet_report
from flows.report import mail as report_email
from flows.report.data import job_stats, late_runs
from flows.report.render import build, schedules_for
from flows.report.week import Week, parse_week, recipients_for, validate_options

JOB = "report"

# ---------------------------------------------------------------- Prefect


@runtime.db_task("report-build", JOB)
def build_task(
    week_label: str, recipients: list[str], now_iso: str, operation_id: str | None = None
) -> dict[str, Any]:
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
            exclude=UUID(operation_id) if operation_id else None,
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
def _send_task(eml: str, recipients: list[str]) -> int:
    current = settings.load_settings()
    report_email.send(report_email.read_eml(Path(eml)), recipients, current)
    return len(recipients)


send_task = runtime.plain_aware(
    _send_task, retries=0, retry_on=lambda exc: isinstance(exc, InfrastructureError)
)


def artifact_markdown(subject: str, directory: str, text: str) -> str:
    """The weekly-report artifact: the subject and where the files are (escaped), the text verbatim."""
    kept = markdown.text(f"Kept in {directory} (report.eml, report.html).")
    return f"## {markdown.text(subject)}\n\n{kept}\n\n{markdown.code_block(text)}\n"


def report_run(run: lifecycle.Run, chosen: Week, recipients: list[str], dry_run: bool) -> Outcome:
    """The job's work inside the lifecycle: build, keep a copy as artifact, send."""
    log = get_logger(job=JOB)
    policy = run.policy
    built = build_task(chosen.label, recipients, run.started_at.isoformat(), str(run.operation_id))
    run.counts.update(
        {k: built[k] for k in ("pass_rate", "evaluated", "failing_checks", "health_alerts", "charts")}
    )
    plain.artifact(
        "markdown",
        key="weekly-report",
        markdown=artifact_markdown(built["subject"], built["directory"], built["text"]),
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


# parse_week and recipients_for check the form's values (one line, "Bad input"), not Prefect.
@flow(name="report", log_prints=False, validate_parameters=False)
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


__all__ = [
    "JOB",
    "Week",
    "build",
    "job_stats",
    "late_runs",
    "parse_week",
    "recipients_for",
    "report_flow",
    "schedules_for",
    "validate_options",
]
