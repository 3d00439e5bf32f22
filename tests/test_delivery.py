"""Delivery against a real HTTP receiver that misbehaves: slow (one byte every few seconds), hanging
(never answers), or answering and then the sending process is killed (SIGKILL).

A notice's delivery is bounded by its channel's deadline and happens after the run, outside the
job's lock: a slow receiver neither keeps the next health run out nor silences it. Each notice is
recorded before it is sent and marked after, in commits of their own: a crash between the two
sends it once more (the same dedup and delivery keys), never more, never never."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flows.alerts import alerting
from flows.core import db
from flows.core.engine import Kind
from tests.conftest import Database, run_job

ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
DRIBBLE_SECONDS = 5.0  # one byte of the answer every 5 s: 47 bytes, about four minutes


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1: ``mode`` ok | dribble | hang | kill."""

    url: str = ""
    mode: str = "ok"
    posts: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)  # a post came in
    cut: threading.Event = field(default_factory=threading.Event)  # the sender hung up mid-answer
    answered: threading.Event = field(default_factory=threading.Event)  # a whole answer went out
    release: threading.Event = field(default_factory=threading.Event)  # ends every hang
    kill_pid: int | None = None  # mode kill: this process dies on post number `kill_on`
    kill_on: int = 1

    def keys(self, event: str = "page") -> list[str]:
        return [p["delivery_key"] for p in self.posts if p["event"] == event]


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
            h.connections += 1
            h.posts.append(body)
            h.arrived.set()
            if h.mode == "hang":
                h.release.wait(120)
                return
            if h.mode == "kill" and len(h.posts) == h.kill_on and h.kill_pid is not None:
                os.kill(h.kill_pid, signal.SIGKILL)  # the receiver has it; the sender never hears back
                h.release.wait(120)
                return
            delay = DRIBBLE_SECONDS if h.mode == "dribble" else 0.0
            try:
                for i in range(len(ANSWER)):
                    self.wfile.write(ANSWER[i : i + 1])
                    self.wfile.flush()
                    if delay and h.release.wait(delay):
                        return
            except OSError:  # BrokenPipe / reset: the sender gave up before the answer ended
                h.cut.set()
                return
            h.answered.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    h.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield h
    finally:
        h.release.set()
        server.shutdown()
        server.server_close()


def _policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Hook, deadline: float = 5) -> Path:
    path = tmp_path / "pgtender.toml"
    path.write_text(
        '[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "DELIVERY_HOOK"\n'
        f"timeout_seconds = {deadline}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))
    monkeypatch.setenv("DELIVERY_HOOK", hook.url)
    return path


def _plant_lag(database: Database) -> None:
    with database.connect() as conn:
        conn.execute("DELETE FROM learning_events")
        conn.execute(
            "INSERT INTO learning_events (occurred_at, ingested_at, event_type)"
            " VALUES (now() - interval '1 hour', now() - interval '1 hour', 'x')"
        )


def _paged(database: Database, check: str) -> bool:
    return bool(
        database.scalar(
            "SELECT paged_at IS NOT NULL FROM pgtender_alert_state WHERE check_name = %s", (check,)
        )
    )


@pytest.mark.slow
def test_a_slow_receiver_holds_neither_the_lock_nor_the_next_run(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Hook
) -> None:
    """The receiver answers one byte every 5 s. Run A's page reaches it; while A waits for the
    answer, run B starts and runs (the health lock is free: delivery is after the run); A gives up
    at its channel's deadline (10 s), long before the answer would end; the page stays due and the
    next run, the receiver well again, delivers it: the same notice, once more."""
    _policy(tmp_path, monkeypatch, hook, deadline=10)
    _plant_lag(migrated_db)
    hook.mode = "dribble"
    reports: dict[str, Any] = {}
    run_a = threading.Thread(target=lambda: reports.update(a=run_job("health")))
    run_a.start()
    assert hook.arrived.wait(180), "run A's page never reached the receiver"
    reports["b"] = run_job("health")  # while A is still waiting for its answer
    run_a.join(180)
    assert not run_a.is_alive()
    assert reports["b"].verdict.kind is Kind.PROBLEMS, reports["b"].verdict.line  # not "skipped"
    assert reports["a"].verdict.kind is Kind.PROBLEMS, reports["a"].verdict.line
    assert hook.cut.wait(60) and not hook.answered.is_set()  # A hung up mid-answer
    assert not _paged(migrated_db, "health.event_lag")  # not accepted: still due
    with migrated_db.connect() as conn:
        statuses = [
            r[0]
            for r in conn.execute(
                "SELECT status FROM pgtender_operations WHERE job = 'health' ORDER BY started_at"
            )
        ]
    assert statuses == ["problems", "problems"]

    hook.mode = "ok"
    run_job("health")
    assert _paged(migrated_db, "health.event_lag")
    run_job("health")  # still failing, already paged: nothing
    pages = [p for p in hook.posts if p["check"] == "health.event_lag"]
    assert [p["event"] for p in pages] == ["page", "page"]  # A's attempt, the delivery
    assert len({p["delivery_key"] for p in pages}) == 1 and len({p["dedup_key"] for p in pages}) == 1


@pytest.mark.slow
def test_a_hanging_receiver_costs_one_deadline_per_round(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Hook
) -> None:
    """Three notices due, a receiver that never answers: the round tries it once (one deadline),
    not once per notice; every notice stays due and goes out once when the receiver is back."""
    _policy(tmp_path, monkeypatch, hook, deadline=2)
    from flows.core.policy import settings

    failing = [
        alerting.Observation(check_name=f"quality.suite_{i}", failing=True, observed=i) for i in range(3)
    ]
    hook.mode = "hang"
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        sent = alerting.evaluate(
            conn, "quality", failing, target="default", policy=settings.current_policy(), complete=False
        )
        assert [d.delivered for d in sent] == [False, False, False]
        assert hook.connections == 1  # one attempt in the round: the channel is down for the rest
        hook.release.set()
        hook.mode = "ok"
        sent = alerting.evaluate(
            conn, "quality", failing, target="default", policy=settings.current_policy(), complete=False
        )
        assert [d.delivered for d in sent] == [True, True, True]
        assert (
            alerting.evaluate(
                conn, "quality", failing, target="default", policy=settings.current_policy(), complete=False
            )
            == []
        )
    assert sorted(p["check"] for p in hook.posts[1:]) == [f"quality.suite_{i}" for i in range(3)]


def _record_two_pages(database: Database) -> None:
    from flows.core.policy import settings

    failing = [
        alerting.Observation(check_name="quality.first", failing=True, observed=1),
        alerting.Observation(check_name="quality.second", failing=True, observed=2),
    ]
    with db.connect(database.dsn, autocommit=True) as conn:
        due = alerting.record(conn, "quality", failing, target="default", complete=False)
    assert due == {"pages_due": 2, "resolves_due": 0}
    assert settings.current_policy().alerts.channels


def _pgtender(args: list[str], database: Database, tmp_path: Path, hook: Hook) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGTENDER_", "PREFECT_"))}
    env.update(
        PGTENDER_DATABASE_URL=database.dsn,
        PGTENDER_CONFIG=str(tmp_path / "pgtender.toml"),
        PGTENDER_STATE_DIR=str(tmp_path / "state"),
        DELIVERY_HOOK=hook.url,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "flows.edge.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_a_crash_after_the_receiver_has_it_sends_it_once_more_only(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Hook
) -> None:
    """Two pages due; `pgtender run views` delivers them after its run; the receiver takes the second
    and the process is killed before it hears back (before the mark). The first stays sent; the next
    run sends the second again — the same delivery key, which the receiver deduplicates — and the
    run after that sends nothing."""
    _policy(tmp_path, monkeypatch, hook)
    _record_two_pages(migrated_db)
    hook.mode = "kill"
    hook.kill_on = 2
    proc = _pgtender(["run", "views"], migrated_db, tmp_path, hook)
    hook.kill_pid = proc.pid
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, out
    assert [p["check"] for p in hook.posts] == ["quality.first", "quality.second"]
    assert _paged(migrated_db, "quality.first") and not _paged(migrated_db, "quality.second")
    # the run itself had finished before the delivery: its ledger row is not left open
    assert migrated_db.scalar("SELECT status FROM pgtender_operations WHERE job = 'views'") == "completed"

    hook.mode = "ok"
    for _ in range(2):
        nxt = _pgtender(["run", "views"], migrated_db, tmp_path, hook)
        out, _ = nxt.communicate(timeout=300)
        assert nxt.returncode == 0, out
    checks = [p["check"] for p in hook.posts]
    assert checks == ["quality.first", "quality.second", "quality.second"]
    assert hook.posts[1]["delivery_key"] == hook.posts[2]["delivery_key"]
    assert hook.posts[1]["dedup_key"] == hook.posts[2]["dedup_key"] == "pgtender/default/quality.second"
    assert _paged(migrated_db, "quality.second")


def test_every_channel_shape_has_its_sender() -> None:
    """A channel type declared in the policy without a class that sends on it would fail only when
    it first pages: every shape of core's union maps to its sender here."""
    from flows.alerts.senders import sender
    from flows.core.policy.alerts import CHANNEL_TYPES, AlertsPolicy

    examples = {
        "webhook": {"url_env": "X"},
        "slack": {"url_env": "X"},
        "teams": {"block": "b"},
        "pagerduty": {"integration_key_env": "K", "api_key_env": "A"},
        "email": {"to": ["a@b"]},
    }
    assert set(examples) == {c.model_fields["type"].annotation.__args__[0] for c in CHANNEL_TYPES}
    policy = AlertsPolicy.model_validate(
        {"channels": [{"name": k, "type": k, **v} for k, v in examples.items()]}
    )
    for channel in policy.channels:
        made = sender(channel)
        assert isinstance(made, type(channel)) and type(made) is not type(channel)
        assert made.type == channel.type and callable(made.send)


def test_smtp_that_answers_a_byte_at_a_time_is_cut_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SMTP server that sends its greeting one byte every 5 s: the mail channel gives up at its
    deadline (one line, no secret) instead of waiting for the whole conversation."""
    import socket

    from flows.alerts import channels
    from flows.alerts.notices import Notice
    from flows.core import clock
    from flows.core.policy.alerts import EmailChannel

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()
    cut = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            for byte in b"220 slow.example ESMTP\r\n":
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    cut.set()
                    return
                if done.wait(DRIBBLE_SECONDS):
                    return
            done.set()

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("PGTENDER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PGTENDER_SMTP_PORT", str(listener.getsockname()[1]))
    now = clock.now()
    notice = Notice(event="test", target="default", check_name="t", subject="", source="t", since=now, at=now)
    mail = EmailChannel(name="mail", type="email", to=("a@b.example",), timeout_seconds=2)
    try:
        with pytest.raises(channels.DeliveryFailed) as failed:
            channels.send(mail, notice)
        assert "\n" not in str(failed.value)
        assert cut.wait(30) and not done.is_set()  # the sender hung up before the greeting ended
    finally:
        done.set()
        listener.close()
