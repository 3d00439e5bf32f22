"""Taking over pg_cron: which pg_cron job each pgtender job replaces, and unscheduling them.

- ``analyze``: reads ``cron.job`` (and ``cron.job_run_details``) wherever pg_cron keeps them (this
  database, or ``cron.database_name`` on the same server), maps each job by its command to the
  pgtender job that replaces it, with its schedule there and here, runs and failures.
- ``migrate``: unschedules the replaced jobs (only those that run in the tended database and whose
  replacement is scheduled here) in one transaction, with ``cron.job`` counted before and after;
  the ledger row (job ``cron``) stores the jobs and the exact ``cron.schedule`` calls that restore
  them, which are also printed.
- ``cron_failures``: failed runs of the pg_cron jobs that remain, for the health flow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from flows.core import clock, ledger
from flows.core.db import load_sql
from flows.core.ddl import expect_equal
from flows.core.errors import ConfigError
from flows.core.logs import get_logger
from flows.core.pgcron import cron_connection, location, replacement_for

Conn = psycopg.Connection[tuple[Any, ...]]

JOB = "cron"


@dataclass(frozen=True, kw_only=True)
class CronJob:
    jobid: int
    jobname: str | None
    schedule: str
    command: str
    database: str
    username: str
    active: bool


@dataclass(frozen=True, kw_only=True)
class JobAnalysis:
    job: CronJob
    replaced_by: str | None  # the pgtender job, when it replaces this one
    note: str  # why (not) replaced
    schedule_here: str | None
    runs: int
    failures: int
    last_run_at: datetime | None
    last_status: str | None
    last_failure_at: datetime | None
    last_failure_message: str | None


@dataclass(frozen=True, kw_only=True)
class Analysis:
    installed: bool
    cron_database: str | None
    tended_database: str
    since: datetime
    jobs: list[JobAnalysis]

    @property
    def replaced(self) -> list[JobAnalysis]:
        return [j for j in self.jobs if j.replaced_by is not None]


@dataclass(frozen=True, kw_only=True)
class Migration:
    executed: bool
    jobs: list[CronJob]
    unschedule: list[str]  # what runs (or would run)
    restore: list[str]  # the exact calls that put them back
    operation_id: UUID | None = None
    kept: list[JobAnalysis] | None = None


# ---------------------------------------------------------------- analyze


def read_jobs(cron_conn: Conn, since: datetime) -> list[tuple[CronJob, dict[str, Any]]]:
    rows = cron_conn.execute(load_sql("queries/cron/jobs.sql"), {"since": since}).fetchall()
    out = []
    for r in rows:
        job = CronJob(
            jobid=int(r[0]),
            jobname=r[1],
            schedule=str(r[2]),
            command=str(r[3]),
            database=str(r[4]),
            username=str(r[5]),
            active=bool(r[6]),
        )
        stats = {
            "runs": int(r[7]),
            "failures": int(r[8]),
            "last_run_at": r[9],
            "last_status": r[10],
            "last_failure_at": r[11],
            "last_failure_message": r[12],
        }
        out.append((job, stats))
    return out


def classify(job: CronJob, tended_database: str, schedules: dict[str, str]) -> tuple[str | None, str]:
    target = replacement_for(job.command)
    if target is None:
        return None, "no pgtender job does this: stays in pg_cron"
    if job.database != tended_database:
        return None, f"like {target}, but runs in database {job.database!r}, not the tended one"
    if target not in schedules:
        return None, f"{target} is not scheduled by pgtender here"
    return target, f"{target} runs it here"


def analyze(
    conn: Conn, *, dsn: str | None, schedules: dict[str, str], since: datetime | None = None
) -> Analysis:
    """Every pg_cron job with its pgtender replacement (if any) and its recent run history.
    ``dsn``: the tended database's (pg_cron may live in another database of its server);
    ``schedules``: job -> cron of the jobs pgtender schedules here."""
    since = since or clock.db_now(conn) - timedelta(days=30)
    with cron_connection(conn, dsn) as (cron_conn, tended):
        if cron_conn is None:
            _, cron_db, _ = location(conn)
            return Analysis(
                installed=False, cron_database=cron_db, tended_database=tended, since=since, jobs=[]
            )
        cron_db = str(cron_conn.info.dbname)
        jobs = []
        for job, stats in read_jobs(cron_conn, since):
            target, note = classify(job, tended, schedules)
            here = schedules.get(target) if target else schedules.get(replacement_for(job.command) or "")
            jobs.append(JobAnalysis(job=job, replaced_by=target, note=note, schedule_here=here, **stats))
    return Analysis(installed=True, cron_database=cron_db, tended_database=tended, since=since, jobs=jobs)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def analysis_text(analysis: Analysis) -> str:
    if not analysis.installed:
        where = (
            f"pg_cron is loaded but not installed in database {analysis.cron_database!r}"
            if analysis.cron_database
            else "pg_cron is not installed (not in shared_preload_libraries)"
        )
        return f"{where}: nothing to take over"
    headers = [
        "jobid",
        "name",
        "pg_cron schedule",
        "replaced by",
        "schedule here",
        "runs",
        "failed",
        "last run",
    ]
    rows = [
        [
            str(a.job.jobid),
            a.job.jobname or "-",
            a.job.schedule,
            a.replaced_by or "-",
            a.schedule_here or "-",
            str(a.runs),
            str(a.failures),
            f"{_when(a.last_run_at)} {a.last_status or ''}".strip(),
        ]
        for a in analysis.jobs
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        f"pg_cron in database {analysis.cron_database!r}; tended database {analysis.tended_database!r};"
        f" runs since {_when(analysis.since)}",
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for a in analysis.jobs:
        lines.append(f"  {a.job.jobid} {a.job.jobname or '-'}: {a.note}; command: {a.job.command}")
        if a.failures:
            lines.append(f"    last failure {_when(a.last_failure_at)}: {a.last_failure_message}")
    lines.append(
        f"{len(analysis.replaced)} of {len(analysis.jobs)} job(s) replaced by pgtender"
        " (pgtender cron migrate --execute unschedules them)"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------- migrate


def restore_statement(cron_conn: Conn, job: CronJob, cron_database: str) -> str:
    """The exact pg_cron call that schedules ``job`` again as it was."""
    lit = sql.Literal
    if job.jobname is None and job.database == cron_database and job.active:
        stmt = sql.SQL("SELECT cron.schedule({}, {});").format(lit(job.schedule), lit(job.command))
    else:
        stmt = sql.SQL("SELECT cron.schedule_in_database({}, {}, {}, {}, {}, {});").format(
            lit(job.jobname or f"restored-{job.jobid}"),
            lit(job.schedule),
            lit(job.command),
            lit(job.database),
            lit(job.username),
            lit(job.active),
        )
    return stmt.as_string(cron_conn)


def migrate(conn: Conn, *, dsn: str | None, schedules: dict[str, str], execute: bool = False) -> Migration:
    """Unschedule the replaced pg_cron jobs (``execute``) or say what would happen (dry run)."""
    log = get_logger(job=JOB)
    analysis = analyze(conn, dsn=dsn, schedules=schedules)
    if not analysis.installed:
        raise ConfigError(analysis_text(analysis))
    with cron_connection(conn, dsn) as (cron_conn, _tended):
        if cron_conn is None:
            raise ConfigError("pg_cron disappeared while migrating")
        cron_db = str(cron_conn.info.dbname)
        jobs = [a.job for a in analysis.replaced]
        restore = [restore_statement(cron_conn, j, cron_db) for j in jobs]
        unschedule = [f"SELECT cron.unschedule({j.jobid});" for j in jobs]
        kept = [a for a in analysis.jobs if a.replaced_by is None]
        if not execute or not jobs:
            return Migration(
                executed=False,
                jobs=jobs,
                unschedule=unschedule,
                restore=restore,
                operation_id=None,
                kept=kept,
            )
        params = {
            "action": "migrate",
            "cron_database": cron_db,
            "jobs": [{**asdict(j), "replaced_by": replacement_for(j.command)} for j in jobs],
            "restore": restore,
        }
        with ledger.operation(conn, JOB, params=params) as op:
            with cron_conn.transaction():
                before = _count(cron_conn)
                for job in jobs:
                    row = cron_conn.execute(
                        load_sql("queries/cron/unschedule.sql"), {"jobid": job.jobid}
                    ).fetchone()
                    if not (row and row[0]):
                        raise ConfigError(f"pg_cron job {job.jobid} could not be unscheduled")
                after = _count(cron_conn)
                expect_equal("pg_cron jobs after unscheduling", before - len(jobs), after)
            op.counts.update(unscheduled=len(jobs), jobs_before=before, jobs_after=after)
        log.info("pg_cron jobs unscheduled", jobs=[j.jobid for j in jobs], operation_id=str(op.operation_id))
        return Migration(
            executed=True,
            jobs=jobs,
            unschedule=unschedule,
            restore=restore,
            operation_id=op.operation_id,
            kept=kept,
        )


def _count(cron_conn: Conn) -> int:
    row = cron_conn.execute(load_sql("queries/cron/count.sql")).fetchone()
    return int(row[0]) if row else 0


def migration_text(m: Migration) -> str:
    if not m.jobs:
        return "nothing to migrate: no pg_cron job is replaced by a pgtender job"
    verb = "unscheduled" if m.executed else "would unschedule (dry run; --execute to do it)"
    lines = [f"{verb} {len(m.jobs)} pg_cron job(s):"]
    lines += [
        f"  {j.jobid} {j.jobname or '-'} [{j.schedule}] -> {replacement_for(j.command)}: {u}"
        for j, u in zip(m.jobs, m.unschedule, strict=True)
    ]
    if m.kept:
        lines.append("kept in pg_cron: " + ", ".join(f"{a.job.jobid} {a.job.jobname or '-'}" for a in m.kept))
    lines.append("to restore them, run in pg_cron's database:")
    lines += [f"  {r}" for r in m.restore]
    if m.operation_id is not None:
        lines.append(f"recorded in the ledger as operation {m.operation_id} (params.restore)")
    return "\n".join(lines)
