"""``pgtender run upkeep`` from the command line (no server running: the job's core here, in plain
mode): its exit codes, and bad input in one line with nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.edge.cli import main
from tests.conftest import Database, human_lines
from tests.upkeep_fixtures import PolicyFile, db_now, make_items, policy_toml, window_around


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture
def plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PolicyFile:
    """No pgtender server for this state directory: ``run`` works here, without Prefect."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "pgtender.toml"
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))
    return PolicyFile(path)


def _ledger(database: Database) -> list[str]:
    with database.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT status FROM pgtender_operations WHERE job = 'upkeep' ORDER BY started_at"
            )
        ]


@pytest.mark.calendar
def test_run_upkeep_exits_0_done_and_1_when_autovacuum_is_behind(
    migrated_db: Database, plain: PolicyFile, capsys: pytest.CaptureFixture[str]
) -> None:
    plain.write({"window": window_around(db_now(migrated_db), open_now=True)})
    code, out, err = run_cli(["run", "upkeep"], capsys)
    assert code == 0, err
    assert human_lines(out) == [out.strip()] and out.startswith("upkeep: done")  # its outcome, once
    assert "analyzed 2" in out
    make_items(migrated_db, "upkeep_items", 5_000)  # autovacuum off
    with migrated_db.connect() as c:
        c.execute("UPDATE upkeep_items SET v = v + 1")
    import time

    time.sleep(1.2)  # the update's statistics reach the shared counters
    code, _, err = run_cli(["run", "upkeep", "--dry-run"], capsys)
    (line,) = human_lines(err)
    assert (
        code == 1
        and line.startswith("upkeep: problems found")
        and "autovacuum is behind on upkeep_items" in line
    )
    assert _ledger(migrated_db) == ["completed", "problems"]


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        (policy_toml({"include": ["no_such_table"]}), "upkeep.include names 'no_such_table'"),
        (policy_toml({"window": {"start": "02:00", "end": "02:00"}}), "the window never opens"),
        (policy_toml({"thresholds": {"dead_tuple_ratio": -0.5}}), "upkeep.thresholds.dead_tuple_ratio"),
        (policy_toml({"window": {"timezone": "Europe/Nowhere"}}), "unknown IANA time zone"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    migrated_db: Database, plain: PolicyFile, capsys: pytest.CaptureFixture[str], policy: str, needle: str
) -> None:
    plain.path.write_text(policy, encoding="utf-8")
    code, _, err = run_cli(["run", "upkeep"], capsys)
    # one line for the operator (the run's own log record, JSON, may stand beside it), no traceback
    said = human_lines(err)
    assert code == 2 and len(said) == 1 and needle in said[0], err
    assert "Traceback" not in err
    assert _ledger(migrated_db) in ([], ["rejected"])  # bad policy: no row; a plan that refuses: rejected
