"""The weekly report: built from planted rows, sent to a real SMTP server (aiosmtpd), kept on failure."""

from __future__ import annotations

import email
import email.policy
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from psycopg.types.json import Jsonb

from flows import report
from flows.core import clock
from flows.core.engine import Kind
from flows.core.errors import ConfigError
from flows.edge.prefect_server import free_port
from flows.registry import REGISTRY
from tests.conftest import Database, flow_run, run_job, verdict_of

WEEK = "2025-W47"  # Mon 2025-11-17 .. Sun 2025-11-23
MONDAY = date(2025, 11, 17)
PREV_MONDAY = MONDAY - timedelta(days=7)


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    inbox = Inbox("127.0.0.1", free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def report_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A policy with recipients and fast retries; a state dir of the test's own."""
    policy = tmp_path / "pgtender.toml"
    policy.write_text(
        "[report]\n"
        'recipients = ["oncall@example.com", "data-team@example.com"]\n'
        'from_address = "pgtender@example.com"\n'
        'timezone = "Europe/Berlin"\n'
        'subject_prefix = "[pgtender test]"\n'
        "send_retries = 2\n"
        "send_retry_delay_seconds = 0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    state = tmp_path / "state"
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(state))
    return state


def _at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _check(conn: Any, day: date, suite: str, key: str | None, status: str, **extra: Any) -> None:
    name = f"quality.{suite}" if key is None else f"quality.{suite}.{key}"
    conn.execute(
        "INSERT INTO data_quality_checks (check_name, suite, target, window_start, window_end, status, score,"
        " unexpected_count, sample) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            name,
            suite,
            suite,
            _at(day),
            _at(day + timedelta(days=1)),
            status,
            extra.get("score"),
            extra.get("unexpected_count"),
            Jsonb(extra["sample"]) if "sample" in extra else None,
        ),
    )


def plant(db: Database) -> None:
    """This week: learning_events 10/12 passed (2 failed), system_performance_metrics 4/5 (1 error,
    1 skipped) -> 14/17 = 82.4 %. Last week: 12/12 and 3/4 -> 15/16 = 93.8 %. Change -11.4 pts."""
    with db.connect() as conn:
        le, spm = "learning_events", "system_performance_metrics"
        for i in range(3):  # this week, learning_events: days Mon..Wed, 4 expectations a day
            day = MONDAY + timedelta(days=i)
            for k in range(4):
                failed = i == 1 and k < 2
                _check(
                    conn,
                    day,
                    le,
                    f"exp{k}",
                    "failed" if failed else "passed",
                    **({"unexpected_count": 7, "sample": ["planted-offender-42"]} if failed else {}),
                )
            _check(conn, day, le, None, "failed" if i == 1 else "passed", score=50.0 if i == 1 else 100.0)
        for k, status in enumerate(["passed", "passed", "passed", "passed", "error", "skipped"]):
            _check(conn, MONDAY + timedelta(days=2), spm, f"exp{k}", status)
        _check(conn, MONDAY + timedelta(days=2), spm, None, "failed", score=80.0)
        for k in range(12):  # last week
            _check(conn, PREV_MONDAY + timedelta(days=k // 4), le, f"exp{k % 4}", "passed")
        for k, status in enumerate(["passed", "passed", "passed", "failed"]):
            _check(conn, PREV_MONDAY, spm, f"exp{k}", status)
        # health: event lag failed in 3 windows on Tuesday
        for w in range(3):
            start = _at(MONDAY + timedelta(days=1), 10, 5 * w)
            conn.execute(
                "INSERT INTO data_quality_checks (check_name, suite, target, window_start, window_end, status)"
                " VALUES ('health.event_lag', 'health', 'learning_events', %s, %s, 'failed')",
                (start, start + timedelta(minutes=5)),
            )
        # ledger: partitions ran on 6 of the 7 days at 00:06 UTC (one failed); Thursday is missing
        for i in [0, 1, 2, 4, 5, 6]:
            started = _at(MONDAY + timedelta(days=i), 0, 6)
            conn.execute(
                "INSERT INTO pgtender_operations (job, status, started_at, finished_at) VALUES"
                " ('partitions', %s, %s, %s)",
                ("failed" if i == 5 else "completed", started, started + timedelta(seconds=3)),
            )
        # capacity: two tables over 10 days, with the capacity job's projections
        for d in range(10):
            at = _at(MONDAY - timedelta(days=2) + timedelta(days=d), 2)
            for name, base, slope in (
                ("learning_events", 50e6, 2e6),
                ("query_performance_logs", 20e6, 0.5e6),
            ):
                conn.execute(
                    "INSERT INTO capacity_planning_metrics (metric_name, resource_type, resource_name,"
                    " measured_at, value, unit) VALUES ('total_bytes', 'table', %s, %s, %s, 'bytes')",
                    (name, at, base + slope * d),
                )
        at = _at(MONDAY + timedelta(days=6), 2)
        conn.execute(
            "INSERT INTO capacity_planning_metrics (metric_name, resource_type, resource_name, measured_at,"
            " value, unit) VALUES ('total_bytes_growth_per_day', 'table', 'learning_events', %s, 2e6,"
            " 'bytes/day')",
            (at,),
        )
        conn.execute(
            "INSERT INTO capacity_planning_metrics (metric_name, resource_type, resource_name, measured_at,"
            " value, unit, projection_horizon, threshold, projected_at) VALUES ('total_bytes_projected',"
            " 'table', 'learning_events', %s, 8e8, 'bytes', interval '365 days', 5e8, %s)",
            (at, _at(date(2026, 4, 1))),
        )


def _parts(msg: EmailMessage) -> tuple[str, str, list[EmailMessage]]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    return str(text.get_content()), str(html.get_content()), images


def _assert_self_contained(html: str, *, allowed: tuple[str, ...]) -> None:
    root = ET.fromstring(html)  # well-formed (XHTML-compatible) markup
    assert root.tag == "html"
    assert not root.findall(".//script") and not root.findall(".//link") and not root.findall(".//iframe")
    for el in root.iter():
        for attr, value in el.attrib.items():
            if attr in ("src", "href", "background"):
                assert value.startswith(allowed), f"{el.tag} {attr}={value[:40]}"
            assert "http://" not in value and "https://" not in value, f"{el.tag} {attr}"
    assert "url(" not in html and "@import" not in html


# ---------------------------------------------------------------- plain functions


def test_parse_week() -> None:
    now = datetime(2025, 11, 24, 7, 30, tzinfo=UTC)  # Monday 08:30 in Berlin
    assert report.parse_week(None, "Europe/Berlin", now=now).label == "2025-W47"
    # Monday 01:00 in Auckland is still Sunday in UTC: the last complete week differs by zone
    sunday = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)
    assert report.parse_week(None, "Pacific/Auckland", now=sunday).label == "2025-W47"
    assert report.parse_week(None, "UTC", now=sunday).label == "2025-W46"
    week = report.parse_week("2025-W47", "Europe/Berlin", now=now)
    assert week.monday == MONDAY and week.complete
    assert week.start == datetime(2025, 11, 16, 23, 0, tzinfo=UTC)
    assert week.utc_start == _at(MONDAY) and week.previous().label == "2025-W46"
    assert not report.parse_week("2025-W48", "UTC", now=now).complete  # in progress
    for bad in ("2025-W54", "2025-47", "W47", "2025-W00", "2030-W01", ""):
        with pytest.raises(ConfigError):
            report.parse_week(bad, "UTC", now=now)


def test_recipients() -> None:
    from flows.core.policy.settings import ReportPolicy

    policy = ReportPolicy(recipients=("a@example.com",))
    assert report.recipients_for(None, policy, dry_run=False) == ["a@example.com"]
    assert report.recipients_for("x@y.z, Bob <b@y.z>", policy, dry_run=False) == ["x@y.z", "b@y.z"]
    for bad in ("", "nobody", "a@", "a b@c.d"):
        with pytest.raises(ConfigError):
            report.recipients_for(bad, policy, dry_run=False)
    with pytest.raises(ConfigError, match="no recipients"):
        report.recipients_for(None, ReportPolicy(), dry_run=False)
    assert report.recipients_for(None, ReportPolicy(), dry_run=True) == []


def test_late_runs_counts_missed_firings() -> None:
    start, end = _at(MONDAY), _at(MONDAY + timedelta(days=7))
    starts = [_at(MONDAY + timedelta(days=i), 0, 6) for i in (0, 1, 2, 4, 5, 6)]
    assert report.late_runs(starts, "5 0 * * *", "UTC", start=start, end=end, now=end) == (7, 1)
    late_start = [*starts, _at(MONDAY + timedelta(days=3), 4, 0)]  # Thursday, four hours late
    assert report.late_runs(late_start, "5 0 * * *", "UTC", start=start, end=end, now=end) == (7, 1)
    # only firings that could have happened by now are expected
    now = _at(MONDAY + timedelta(days=2), 12)
    assert report.late_runs(starts, "5 0 * * *", "UTC", start=start, end=end, now=now) == (3, 0)


BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("week", "hours", "first", "last"),
    [
        ("2027-W12", 167, datetime(2027, 3, 21, 23, 0, tzinfo=UTC), datetime(2027, 3, 28, 22, 0, tzinfo=UTC)),
        (
            "2027-W43",
            169,
            datetime(2027, 10, 24, 22, 0, tzinfo=UTC),
            datetime(2027, 10, 31, 23, 0, tzinfo=UTC),
        ),
        ("2027-W20", 168, datetime(2027, 5, 16, 22, 0, tzinfo=UTC), datetime(2027, 5, 23, 22, 0, tzinfo=UTC)),
    ],
)
def test_week_with_a_dst_change_is_seven_local_days(
    week: str, hours: int, first: datetime, last: datetime
) -> None:
    w = report.parse_week(week, BERLIN, now=datetime(2028, 1, 1, tzinfo=UTC))
    assert (w.start, w.end, w.hours) == (first, last, hours)
    assert w.start.astimezone(ZoneInfo(BERLIN)).hour == w.end.astimezone(ZoneInfo(BERLIN)).hour == 0
    assert len(w.days) == 7 and w.days[0].weekday() == 0
    text = w.ranges_text()
    assert f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC ({hours} h" in text
    assert f"quality by UTC day, {w.days[0].isoformat()} to {w.days[-1].isoformat()}" in text


@pytest.mark.parametrize(
    ("cron", "week", "runs_local"),
    [
        # the report's own schedule: one Monday 08:00 (local) firing in the week after each change
        ("0 8 * * 1", "2027-W13", [datetime(2027, 3, 29, 8, 0, 20)]),
        ("0 8 * * 1", "2027-W44", [datetime(2027, 11, 1, 8, 0, 20)]),
        # daily 08:00 local through the week of each change: seven firings, each on time
        ("0 8 * * *", "2027-W12", [datetime(2027, 3, 22 + d, 8, 0, 20) for d in range(7)]),
        ("0 8 * * *", "2027-W43", [datetime(2027, 10, 25 + d, 8, 0, 20) for d in range(7)]),
    ],
)
def test_late_runs_across_dst(cron: str, week: str, runs_local: list[datetime]) -> None:
    """Runs at their local fire time are on time across a DST change (Prefect's croniter, which this
    replaced, put the firing after a change an hour off and counted these runs late)."""
    w = report.parse_week(week, BERLIN, now=datetime(2028, 1, 1, tzinfo=UTC))
    starts = [r.replace(tzinfo=ZoneInfo(BERLIN)).astimezone(UTC) for r in runs_local]
    assert report.late_runs(starts, cron, BERLIN, start=w.start, end=w.end, now=w.end) == (len(starts), 0)


def test_report_on_a_dst_monday_counts_its_local_week(migrated_db: Database, tmp_path: Path) -> None:
    """Monday 08:00 after the spring change: the week is Monday to Monday in Berlin (167 hours); a
    run late on Sunday evening counts, one just after the following midnight does not, and the report
    says which UTC range it used."""
    from flows.core.policy import settings

    policy = settings.Policy.model_validate({"report": {"timezone": BERLIN}})
    now = datetime(2027, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST
    week = report.parse_week(None, BERLIN, now=now)
    assert week.label == "2027-W12" and week.complete
    with migrated_db.connect() as conn:
        for local in (
            datetime(2027, 3, 22, 0, 10),
            datetime(2027, 3, 28, 23, 50),
            datetime(2027, 3, 29, 0, 10),
        ):
            at = local.replace(tzinfo=ZoneInfo(BERLIN))
            conn.execute(
                "INSERT INTO pgtender_operations (job, status, started_at, finished_at)"
                " VALUES ('capacity', 'completed', %s, %s)",
                (at, at + timedelta(seconds=3)),
            )
        built = report.build(
            conn,
            week,
            [],
            policy=policy,
            schedules={job: (s.cron, s.timezone) for job, s in REGISTRY.schedules(policy).items()},
            state_dir=tmp_path,
            now=now,
        )
    assert built.summary["hours"] == 167
    assert built.summary["range_utc"] == ["2027-03-21T23:00:00+00:00", "2027-03-28T22:00:00+00:00"]
    text = built.text.read_text(encoding="utf-8")
    assert (
        "2027-03-21 23:00 to 2027-03-28 22:00 UTC (167 h: Monday 00:00 to Monday 00:00 Europe/Berlin)" in text
    )
    # runs / ok / problems / failed / skipped / abandoned / late
    assert "  capacity     2 / 2 / 0 / 0 / 0 / 0 / 7 of 7" in text  # Monday 00:10 and Sunday 23:50 local
    # 167 hours of 5-minute firings (2004), counted from pgtender's first run here (Monday 00:10
    # local): the 00:00 and 00:05 firings came before it existed
    assert "  health       0 / 0 / 0 / 0 / 0 / 0 / 2002 of 2002" in text
    assert "2027-03-21 23:00 to 2027-03-28 22:00 UTC" in built.html.read_text(encoding="utf-8")


# ---------------------------------------------------------------- the flow


@pytest.mark.usefixtures("prefect_api")
def test_default_week_is_the_databases_last_complete_week(migrated_db: Database, report_env: Path) -> None:
    """No --week: the last complete week in the report's zone by the database's clock (at New Year:
    the ISO week-year's), also when pgtender's own clock is a week off."""
    with migrated_db.connect() as conn:
        before = report.parse_week(None, BERLIN, now=clock.db_now(conn)).label
    with clock.travel(timedelta(days=7)):
        result = flow_run("report", dry_run=True).result()
    with migrated_db.connect() as conn:
        after = report.parse_week(None, BERLIN, now=clock.db_now(conn)).label
    assert result["week"] in {before, after}
    start, end = (datetime.fromisoformat(t) for t in result["range_utc"])
    assert end - start in {timedelta(hours=h) for h in (167, 168, 169)}
    assert start.astimezone(ZoneInfo(BERLIN)).strftime("%a %H:%M") == "Mon 00:00"


@pytest.mark.usefixtures("prefect_api")
def test_report_arrives_with_charts_and_planted_numbers(
    migrated_db: Database, smtp_server: Inbox, report_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGTENDER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("PGTENDER_SMTP_PORT", str(smtp_server.port))
    plant(migrated_db)

    state = flow_run("report", week=WEEK)
    assert verdict_of(state).kind is Kind.DONE, state.message
    result = state.result()

    assert result["sent"] == 2 and result["pass_rate"] == 82.35 and result["failing_checks"] == 3
    ((rcpt, msg),) = smtp_server.messages
    assert sorted(rcpt) == ["data-team@example.com", "oncall@example.com"]
    assert msg["To"] == "oncall@example.com, data-team@example.com"
    assert msg["From"] == "pgtender@example.com"
    assert msg["Subject"] == (
        "[pgtender test] Data quality 2025-W47: 82.4% passed on 3 of 7 days (-11.4 pts vs 2025-W46),"
        " 3 failing check(s)"
    )
    assert msg.get_content_type() == "multipart/alternative"
    text, html, images = _parts(msg)
    for part in (text, html):
        assert "82.4%" in part and "-11.4 pts" in part and "93.8%" in part
        assert "83.3%" in part and "-16.7 pts" in part  # learning_events 10/12 vs 12/12
        assert "80.0%" in part and "75.0%" in part  # system_performance_metrics 4/5 vs 3/4
        assert "planted-offender-42" in part and "quality.learning_events.exp0" in part
        assert "health.event_lag" in part
    assert "1 of 7" in html  # partitions: Thursday's run is missing
    assert (
        "  partitions   6 / 5 / 0 / 1 / 0 / 0 / 1 of 7" in text
    )  # runs / ok / problems / failed / skipped / abandoned / late
    # both charts attached as inline PNGs, each referenced by its Content-ID
    assert sorted(str(p.get_filename()) for p in images) == ["quality_scores.png", "table_growth.png"]
    for image in images:
        payload = image.get_content()
        assert payload[:8] == b"\x89PNG\r\n\x1a\n" and len(payload) > 5000
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in html
        assert image.get_content_disposition() == "inline"
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    assert related.get_payload()[0].get_content_type() == "text/html"  # type: ignore[index,union-attr]
    _assert_self_contained(html, allowed=("cid:",))
    # kept: the .eml on disk is the message that was sent; the ledger has the run
    kept = sorted((report_env / "reports" / WEEK).glob("*/report.eml"))
    assert (
        len(kept) == 1
        and email.message_from_bytes(kept[0].read_bytes(), policy=email.policy.default)["Subject"]
        == msg["Subject"]
    )
    with migrated_db.connect() as conn:
        row = conn.execute(
            "SELECT status, counts ->> 'sent', params ->> 'week' FROM pgtender_operations WHERE job = 'report'"
        ).fetchone()
    assert row == ("completed", "2", WEEK)


@pytest.mark.usefixtures("prefect_api")
def test_dry_run_writes_eml_and_self_contained_html_and_sends_nothing(
    migrated_db: Database, smtp_server: Inbox, report_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGTENDER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("PGTENDER_SMTP_PORT", str(smtp_server.port))
    plant(migrated_db)

    state = flow_run("report", week=WEEK, to="someone@example.org", dry_run=True)
    assert verdict_of(state).kind is Kind.DONE, state.message
    result = state.result()

    assert result["dry_run"] is True and result["sent"] == 0
    assert smtp_server.messages == []
    eml, html_file = Path(result["eml"]), Path(result["html"])
    assert eml.exists() and html_file.exists() and html_file.parent == eml.parent
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "someone@example.org"
    html = html_file.read_text(encoding="utf-8")
    _assert_self_contained(html, allowed=("data:image/png;base64,",))
    assert html.count('src="data:image/png;base64,') == 2
    assert (eml.parent / "quality_scores.png").exists() and (eml.parent / "table_growth.png").exists()


@pytest.mark.usefixtures("prefect_api")
def test_failed_send_is_retried_then_fails_and_the_report_is_kept(
    migrated_db: Database, report_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    monkeypatch.setenv("PGTENDER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PGTENDER_SMTP_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("PGTENDER_SMTP_TIMEOUT_SECONDS", "5")
    plant(migrated_db)

    state = flow_run("report", week=WEEK)

    assert state.is_failed()
    verdict = verdict_of(state)
    assert verdict.kind is Kind.INFRASTRUCTURE and "SMTP 127.0.0.1" in verdict.line
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    send = [t for t in tasks if t.name.startswith("report-send")]
    assert len(send) == 1 and send[0].run_count == 3  # first try + send_retries = 2
    assert send[0].state is not None and send[0].state.is_failed()
    kept = list((report_env / "reports" / WEEK).glob("*/report.eml"))
    assert len(kept) == 1 and (kept[0].parent / "report.html").exists()
    with migrated_db.connect() as conn:
        status, error = conn.execute(
            "SELECT status, error FROM pgtender_operations WHERE job = 'report'"
        ).fetchone()  # type: ignore[misc]
    assert status == "failed" and "SMTP 127.0.0.1" in error


@pytest.mark.usefixtures("prefect_api")
def test_bad_week_is_a_config_error_and_changes_nothing(migrated_db: Database, report_env: Path) -> None:
    for options, named in (
        ({"week": "2025-W99"}, "W99"),
        ({"week": "next week"}, "week"),
        ({"to": "not-an-address"}, "to"),
    ):
        report = run_job("report", **options)
        assert report.verdict.kind is Kind.BAD_INPUT and report.verdict.exit_code == 2, report.verdict
        assert named in report.verdict.line
    assert not (report_env / "reports").exists()
    # nothing written; a request that parsed but names no real week is on the ledger as rejected
    # (the weekly report counts refused requests), the malformed ones never reached the database
    with migrated_db.connect() as conn:
        assert conn.execute("SELECT job, status FROM pgtender_operations").fetchall() == [
            ("report", "rejected")
        ]
