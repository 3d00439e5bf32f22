"""Alerts end to end: a real HTTP receiver on 127.0.0.1 and a real SMTP server (aiosmtpd).

One page per (check, target) when it starts failing, nothing while it keeps failing, one resolve
when it clears; secrets never in a payload, a mail or a log line."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog

from flows.alerts import alerting
from flows.alerts import hooks as alert_hooks
from flows.core import db
from flows.core.policy.alerts import AlertsPolicy, SlackChannel, WebhookChannel
from flows.edge.cli import main
from tests.conftest import Database
from tests.fleet_fixtures import BASE, NAMES, Fleet
from tests.test_report import free_port


def _policy() -> Any:
    from flows.core.policy import settings

    return settings.current_policy()


SECRET = "s3cr3t-hook-token-4242"


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    fail_next: int = 0  # answer 500 to this many posts

    def events(self, event: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["event"] == event]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            rec = holder["r"]
            if rec.fail_next > 0:
                rec.fail_next -= 1
                self.send_response(500)
                self.end_headers()
                return
            rec.raw.append(self.path + " " + body)
            rec.posts.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook/{SECRET}?token={SECRET}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    box = Inbox("127.0.0.1", free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    monkeypatch.setenv("PGTENDER_SMTP_HOST", box.host)
    monkeypatch.setenv("PGTENDER_SMTP_PORT", str(box.port))
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def alert_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver, inbox: Inbox) -> Path:
    policy = tmp_path / "pgtender.toml"
    policy.write_text(
        '[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "ONCALL_HOOK"\n\n'
        '[[alerts.channels]]\nname = "mail"\ntype = "email"\nto = ["oncall@example.com"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    monkeypatch.setenv("ONCALL_HOOK", receiver.url)
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(tmp_path / "state"))
    return policy


def _plant_lag(database: Database) -> None:
    with database.connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, ingested_at, event_type)"
            " VALUES (now() - interval '1 hour', now() - interval '1 hour', 'x')"
        )


def _fix_lag(database: Database) -> None:
    with database.connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, ingested_at, event_type) VALUES (now(), now(), 'x')"
        )


def _health() -> Any:
    from tests.conftest import flow_run

    return flow_run("health")


@pytest.mark.usefixtures("prefect_api")
def test_a_breach_pages_once_and_resolves_once(
    migrated_db: Database, alert_policy: Path, receiver: Receiver, inbox: Inbox
) -> None:
    with structlog.testing.capture_logs() as logs:
        # a quiet database: nothing is sent
        assert _health().is_completed()
        assert receiver.posts == [] and inbox.messages == []

        _plant_lag(migrated_db)
        first = _health()
        assert first.is_failed() and (first.message or "").startswith("Problems found: ")
        # exactly one page, within the health run that found the breach, on both channels
        assert len(receiver.posts) == 1 and len(inbox.messages) == 1
        page = receiver.posts[0]
        assert page["event"] == "page" and page["check"] == "health.event_lag"
        assert page["target"] == "default" and page["subject"] == "learning_events"
        assert page["observed"] >= 3600 and page["limit"] and page["next_command"]
        assert "FAILING health.event_lag[learning_events] on default" in str(inbox.messages[0]["Subject"])

        for _ in range(5):  # it keeps failing: nothing more
            assert (_health().message or "").startswith("Problems found: ")
        assert len(receiver.posts) == 1 and len(inbox.messages) == 1

        _fix_lag(migrated_db)
        assert _health().is_completed()
        assert [p["event"] for p in receiver.posts] == ["page", "resolve"]
        resolve = receiver.posts[1]
        assert (resolve["check"], resolve["subject"], resolve["target"]) == (
            "health.event_lag",
            "learning_events",
            "default",
        )
        assert len(inbox.messages) == 2 and "RESOLVED" in str(inbox.messages[1]["Subject"])

        assert _health().is_completed()  # quiet again: nothing
        assert len(receiver.posts) == 2 and len(inbox.messages) == 2

    with migrated_db.connect() as conn:
        state, failures, paged, resolved = conn.execute(
            "SELECT state, failures, paged_at IS NOT NULL, resolved_at IS NOT NULL"
            " FROM pgtender_alert_state WHERE check_name = 'health.event_lag'"
        ).fetchone()
    assert (state, failures, paged, resolved) == ("ok", 6, True, True)
    # the secret (the hook's URL) is in no payload, no mail and no log line
    mails = "".join(m.as_string() for m in inbox.messages)
    assert SECRET not in json.dumps(receiver.posts) and SECRET not in mails
    assert SECRET not in json.dumps(logs, default=str)
    assert any(e["event"] == "alert sent" for e in logs)


@pytest.mark.usefixtures("prefect_api")
def test_an_undelivered_page_is_retried_and_sent_once(
    migrated_db: Database, alert_policy: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGTENDER_SMTP_PORT", str(free_port()))  # the mail channel is down all along
    failing = alerting.Observation(check_name="health.xid_age", subject="db", failing=True, observed=9)
    receiver.fail_next = 1
    with structlog.testing.capture_logs() as logs, db.connect(migrated_db.dsn, autocommit=True) as conn:
        first = alerting.evaluate(conn, "health", [failing], target="default", policy=_policy())
        assert [d.delivered for d in first] == [False] and receiver.posts == []
        second = alerting.evaluate(
            conn, "health", [failing], target="default", policy=_policy()
        )  # the receiver is back
        assert [d.delivered for d in second] == [True] and len(receiver.events("page")) == 1
        assert alerting.evaluate(conn, "health", [failing], target="default", policy=_policy()) == []
        # a check that clears before anyone was paged sends nothing; one that was paged resolves
        assert len(alerting.evaluate(conn, "health", [], target="default", policy=_policy())) == 1
        assert len(receiver.events("resolve")) == 1
    failures = [e for e in logs if e["event"] == "alert channel failed"]
    assert {e["channel"] for e in failures} == {"oncall", "mail"}
    assert SECRET not in json.dumps(logs, default=str)


def _after(job: str, error: str | None, dsn: str, state_dir: Path) -> None:
    """What the engine tells the alerts layer after one target's run."""
    from flows.core.engine import Done, Finished, TargetResult
    from flows.core.errors import InfrastructureError
    from flows.core.fleet.targets import Target

    target = Target(name="default", source="test", dsn=dsn, policy=_policy())
    result = (
        TargetResult(target="default", error=InfrastructureError(error))
        if error is not None
        else TargetResult(target="default", outcome=Done())
    )
    alert_hooks.after_run(Finished(job=job, target=target, result=result, state_dir=state_dir))


def test_infrastructure_errors_page_once_even_with_the_database_down(
    migrated_db: Database, alert_policy: Path, receiver: Receiver, tmp_path: Path
) -> None:
    good = migrated_db.dsn
    _after("views", "database error: OperationalError: timeout", good, tmp_path)
    _after("views", "database error: OperationalError: timeout", good, tmp_path)
    assert [(p["event"], p["check"]) for p in receiver.posts] == [("page", "job.views")]
    _after("views", None, good, tmp_path)
    assert [p["event"] for p in receiver.posts] == ["page", "resolve"]

    # the tended database itself unreachable: paged once (state in a file), resolved when it is back
    down = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    _after("health", "database unreachable", down, tmp_path)
    _after("health", "database unreachable", down, tmp_path)
    assert [p["event"] for p in receiver.posts] == ["page", "resolve", "page"]
    db.close_pools()
    _after("health", None, good, tmp_path)
    assert [p["event"] for p in receiver.posts] == ["page", "resolve", "page", "resolve"]
    assert receiver.posts[3]["check"] == "job.health"


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"name": "a", "type": "webhook"}, "exactly one of url_env or block"),
        ({"name": "a", "type": "webhook", "url_env": "X", "block": "b"}, "exactly one of url_env or block"),
        ({"name": "a", "type": "sms", "url_env": "X"}, "webhook"),
        ({"name": "a", "type": "email"}, "needs `to`"),
        ({"name": "a", "type": "email", "to": ["x@y"], "url_env": "X"}, "takes `to` only"),
        (
            {"name": "a", "type": "pagerduty", "integration_key_env": "K"},
            "integration_key_env and api_key_env",
        ),
        ({"name": "a", "type": "slack", "url_env": "not a var"}, "pattern"),
        ({"name": "a", "type": "slack", "url": "https://hooks.slack.com/x"}, "Extra inputs"),
    ],
)
def test_channel_shapes_are_strict(channel: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        AlertsPolicy.model_validate({"channels": [channel]})


def test_bad_alert_config_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('[[alerts.channels]]\nname = "x"\ntype = "webhook"\n', encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    with pytest.raises(SystemExit) as exit_info:
        main(["alerts", "test"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "alerts.channels.0" in err and "url_env or block" in err

    # a well-formed channel whose variable is not set: one line naming the variable, exit 2
    policy.write_text(
        '[[alerts.channels]]\nname = "x"\ntype = "webhook"\nurl_env = "PGT_UNSET_HOOK"\n', encoding="utf-8"
    )
    monkeypatch.delenv("PGT_UNSET_HOOK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["alerts", "apply"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "PGT_UNSET_HOOK is not set" in err


@pytest.mark.usefixtures("prefect_api")
def test_apply_creates_updates_and_leaves_blocks_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

    policy = tmp_path / "p.toml"
    policy.write_text(
        '[[alerts.channels]]\nname = "hook-t"\ntype = "webhook"\nurl_env = "T_HOOK"\n\n'
        '[[alerts.channels]]\nname = "slack-t"\ntype = "slack"\nurl_env = "T_SLACK"\n\n'
        '[[alerts.channels]]\nname = "mail-t"\ntype = "email"\nto = ["a@b"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    monkeypatch.setenv("T_HOOK", f"http://10.1.2.3/hook/{SECRET}")
    monkeypatch.setenv("T_SLACK", "https://hooks.slack.com/services/T000/B000/XXXX")

    def apply() -> dict[str, str]:
        main(["alerts", "apply"])  # returns: exit 0
        out = capsys.readouterr().out
        assert SECRET not in out
        return {line.split()[0]: line.split(maxsplit=2)[2] for line in out.splitlines()}

    first = apply()
    assert first["hook-t"] in ("created", "updated") and first["slack-t"] in ("created", "updated")
    assert first["mail-t"] == "no block"
    assert apply() == {"hook-t": "unchanged", "slack-t": "unchanged", "mail-t": "no block"}
    monkeypatch.setenv("T_SLACK", "https://hooks.slack.com/services/T000/B000/YYYY")
    assert apply()["slack-t"] == "updated"
    hook = CustomWebhookNotificationBlock.load("pgtender-hook-t")
    assert hook.url == "{{url}}" and hook.secrets.get_secret_value() == {
        "url": f"http://10.1.2.3/hook/{SECRET}"
    }
    slack = SlackWebhook.load("pgtender-slack-t")
    assert slack.url.get_secret_value().endswith("YYYY")


def test_channel_block_name() -> None:
    assert WebhookChannel(name="x", type="webhook", url_env="X").block_name == "pgtender-x"
    assert SlackChannel(name="x", type="slack", block="mine").block_name == "mine"


def test_late_jobs_and_a_short_partition_horizon_page_with_their_next_command(
    migrated_db: Database, alert_policy: Path, receiver: Receiver
) -> None:
    from flows.health import alerts as health_alerts

    rows = [
        {
            "check": "health.job_watchdog",
            "target": "views",
            "status": "failed",
            "observed": 5400.0,
            "threshold": 1350.0,
            "expected": "last success within 1350 s",
            "note": "",
        },
        {
            "check": "health.partition_horizon",
            "target": "learning_events",
            "status": "failed",
            "observed": 0.4,
            "threshold": 1.0,
            "expected": ">= 1 intervals ahead",
            "note": "",
        },
        {
            "check": "health.xid_age",
            "target": "database",
            "status": "passed",
            "observed": 10,
            "threshold": 1e9,
            "expected": None,
            "note": "",
        },
    ]
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        sent = alerting.evaluate(
            conn, "health", health_alerts.observations(rows), target="default", policy=_policy()
        )
        assert len(sent) == 2 and all(d.delivered for d in sent)
        # the same rows again (the next health run): nothing
        assert (
            alerting.evaluate(
                conn, "health", health_alerts.observations(rows), target="default", policy=_policy()
            )
            == []
        )
    pages = {p["check"]: p for p in receiver.events("page")}
    assert pages["health.job_watchdog"]["subject"] == "views"
    assert pages["health.job_watchdog"]["next_command"].startswith("pgtender run views")
    assert pages["health.job_watchdog"]["limit"] == "last success within 1350 s"
    assert pages["health.partition_horizon"]["next_command"].startswith("pgtender run partitions")
    assert pages["health.partition_horizon"]["observed"] == 0.4


@pytest.mark.usefixtures("prefect_api")
def test_a_fleet_sweep_pages_once_per_target_and_names_it(
    fleet: Fleet, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One health sweep over three targets: the lag breach of alpha pages once, named alpha (its
    state in alpha's own database); bravo and charlie stay quiet on that check; no page says
    `default`; the fix resolves alpha's once."""
    fleet.write(BASE + '\n[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "ONCALL_HOOK"\n')
    monkeypatch.setenv("ONCALL_HOOK", receiver.url)
    for name, d in fleet.dbs.items():
        with d.connect() as conn:
            if name == "alpha":  # the newest event an hour old: lag over alpha's 300 s
                conn.execute("DELETE FROM learning_events WHERE occurred_at > now() - interval '1 hour'")
                conn.execute(
                    "INSERT INTO learning_events (occurred_at, ingested_at, event_type)"
                    " VALUES (now() - interval '1 hour', now() - interval '1 hour', 'x')"
                )
            else:
                conn.execute(
                    "INSERT INTO learning_events (occurred_at, ingested_at, event_type)"
                    " VALUES (now(), now(), 'x')"
                )

    def lag_posts(event: str) -> list[dict[str, Any]]:
        return [p for p in receiver.events(event) if p["check"] == "health.event_lag"]

    from tests.conftest import flow_run

    flow_run("health")
    assert [p["target"] for p in lag_posts("page")] == ["alpha"]
    assert receiver.posts and {p["target"] for p in receiver.posts} <= set(NAMES)
    with fleet.dbs["alpha"].connect() as conn:
        assert conn.execute(
            "SELECT target, state FROM pgtender_alert_state WHERE check_name = 'health.event_lag'"
        ).fetchall() == [("alpha", "failing")]

    flow_run("health")  # still failing: nothing more for it
    assert len(lag_posts("page")) == 1

    with fleet.dbs["alpha"].connect() as conn:
        conn.execute(
            "INSERT INTO learning_events (occurred_at, ingested_at, event_type) VALUES (now(), now(), 'x')"
        )
    flow_run("health")
    assert [p["target"] for p in lag_posts("resolve")] == ["alpha"] and len(lag_posts("page")) == 1


def test_alerts_test_reaches_every_channel_or_exits_3(
    alert_policy: Path,
    receiver: Receiver,
    inbox: Inbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["alerts", "test"])
    out = capsys.readouterr().out
    assert "oncall" in out and "mail" in out and "FAILED" not in out
    assert [p["event"] for p in receiver.posts] == ["test"] and len(inbox.messages) == 1
    assert SECRET not in out
    monkeypatch.setenv("ONCALL_HOOK", "http://127.0.0.1:1/hook?token=" + SECRET)  # nothing listens
    with pytest.raises(SystemExit) as exit_info:
        main(["alerts", "test", "--channel", "oncall"])
    assert exit_info.value.code == 3
    captured = capsys.readouterr()
    assert "oncall" in captured.out and "FAILED" in captured.out
    assert SECRET not in captured.out + captured.err


PD_KEY = "R0uting-Key-0f-The-Service-77"


def test_pagerduty_pages_trigger_and_resolve_one_incident(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """PagerDuty gets Events API v2 events: a page triggers the incident of its dedup key (target,
    check, subject) and the resolve closes that same incident (Prefect's block could only trigger:
    a resolve opened a second incident). The routing key is in no log line."""
    events_url = receiver.url.split("/hook/")[0] + "/v2/enqueue"
    policy = tmp_path / "pgtender.toml"
    policy.write_text(
        f'[[alerts.channels]]\nname = "pd"\ntype = "pagerduty"\nintegration_key_env = "PD_ROUTING_KEY"\n'
        f'api_key_env = "PD_API_KEY"\nevents_url = "{events_url}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    monkeypatch.setenv("PD_ROUTING_KEY", PD_KEY)
    monkeypatch.setenv("PD_API_KEY", "unused-by-the-events-api")
    lag = alerting.Observation(
        check_name="health.event_lag", subject="learning_events", failing=True, observed=7200
    )
    other = alerting.Observation(check_name="health.xid_age", subject="db", failing=True, observed=9)
    with structlog.testing.capture_logs() as logs, db.connect(migrated_db.dsn, autocommit=True) as conn:
        alerting.evaluate(conn, "health", [lag, other], target="default", policy=_policy())
        assert [p["event_action"] for p in receiver.posts] == ["trigger", "trigger"]
        page = receiver.posts[0]
        assert page["routing_key"] == PD_KEY
        assert page["dedup_key"] == "pgtender/default/health.event_lag[learning_events]"
        assert page["payload"]["severity"] == "critical" and page["payload"]["source"] == "default"
        assert "FAILING health.event_lag[learning_events] on default" in page["payload"]["summary"]
        assert receiver.posts[1]["dedup_key"] != page["dedup_key"]  # one incident per check

        alerting.evaluate(
            conn, "health", [lag, other], target="default", policy=_policy()
        )  # still failing: nothing
        assert len(receiver.posts) == 2
        alerting.evaluate(
            conn, "health", [other], target="default", policy=_policy()
        )  # the lag cleared, the other check still fails
        resolve = receiver.posts[2]
        assert resolve == {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": page["dedup_key"]}
        assert len(receiver.posts) == 3

    main(["alerts", "test"])  # raises SystemExit only when a channel refused the notice
    test_trigger, test_resolve = receiver.posts[3:]
    assert test_trigger["payload"]["severity"] == "info"
    assert (test_resolve["event_action"], test_resolve["dedup_key"]) == ("resolve", test_trigger["dedup_key"])
    assert PD_KEY not in json.dumps(logs, default=str)
