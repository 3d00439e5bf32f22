"""What the CLI says about itself: every help text shows all its words on a terminal (Rich markup eats
an unescaped "[...]": "Alert channels (policy [])"), and `alerts status` says when nothing can page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flows.alerts import alerting
from flows.edge.alerts_cli import NO_CHANNEL
from tests.conftest import Database


def _help_texts() -> list[tuple[list[str], str]]:
    """(command words, a help text it shows) for the app, every group, command and option."""
    import typer.main

    from flows.edge.cli import app

    out: list[tuple[list[str], str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        if cmd.help:
            out.append((path, cmd.help))
        out.extend((path, p.help) for p in cmd.params if getattr(p, "help", None))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def _words(text: str) -> list[str]:
    return text.replace("\\[", "[").split()  # a "\[" in a help text is Rich's escape for "["


@pytest.mark.parametrize(
    ("path", "text"), _help_texts(), ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_every_help_text_shows_all_its_words(path: list[str], text: str) -> None:
    from typer.testing import CliRunner

    from flows.edge.cli import app

    shown = CliRunner().invoke(
        app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}, terminal_width=400
    )
    assert shown.exit_code == 0, shown.output
    rendered = " ".join(re.sub(r"[│╭╮╰╯─]", " ", shown.output).split())
    first_paragraph = text.split("\n\n", maxsplit=1)[0]
    missing = [w for w in _words(first_paragraph) if w not in rendered]
    assert not missing, f"pgtender {' '.join(path)} --help lost {missing[0]!r}: {rendered[:300]}"


def test_alerts_help_names_the_policy_section() -> None:
    from typer.testing import CliRunner

    from flows.edge.cli import app

    shown = CliRunner().invoke(app, ["alerts", "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert "the policy's [[alerts.channels]]:" in shown.output


def _status(capsys: pytest.CaptureFixture[str]) -> list[str]:
    from flows.edge.cli import main

    main(["alerts", "status"])
    return capsys.readouterr().out.splitlines()


def _failing(db: Database) -> None:
    """A health check failing now, recorded by the alerting engine itself (its page due, unsent)."""
    with db.connect(autocommit=True) as conn:
        alerting.record(
            conn,
            "health",
            [alerting.Observation(check_name="health.xid_age", subject="database", failing=True, observed=9)],
            target="default",
        )


def test_alerts_status_says_nothing_can_page_without_a_channel(
    migrated_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _status(capsys) == ["no check is failing", NO_CHANNEL]
    _failing(migrated_db)
    lines = _status(capsys)
    assert lines[0].startswith("default  health.xid_age[database]  failing since ")
    assert lines[0].endswith("(1 runs), not paged (no alert channel)")
    assert (
        lines[-1]
        == NO_CHANNEL
        == ("no alert channel is configured ([[alerts.channels]] in the policy file): nothing can page")
    )
    assert "not yet" not in "\n".join(lines)


def test_alerts_status_with_a_channel_says_not_paged_yet(
    migrated_db: Database, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "pgtender.toml"
    policy.write_text(
        '[[alerts.channels]]\nname = "oncall"\ntype = "webhook"\nurl_env = "ONCALL_HOOK"\n', encoding="utf-8"
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(policy))
    monkeypatch.setenv("ONCALL_HOOK", "http://127.0.0.1:9/hook")
    with migrated_db.connect() as conn:  # as if its page could not be delivered yet
        conn.execute(
            "INSERT INTO pgtender_alert_state (target, check_name, subject, source, state, since, last_seen_at,"
            " summary, next_command, failures) VALUES ('default', 'health.xid_age', 'database', 'health',"
            " 'failing', now(), now(), 'xid age', '', 2)"
        )
    lines = _status(capsys)
    assert len(lines) == 1 and lines[0].endswith("(2 runs), not paged yet")
