"""Issue 26.6: SIGTERM (what Kubernetes, systemd and Prefect's cancellation send) to a dump-mode
retention run: it stops at its next safe point, its ledger row says `interrupted` with what it did,
the command prints one line and exits 143 (README); as a flow run (the process a served deployment
or a worker starts: `python -m prefect.engine`) it ends Cancelled "Interrupted: ..." in Prefect.
Before, it died at once with no message and its row stayed `started`.

The runs are real processes; the signal is sent once the first expired partition is gone (its
ledger row counts it as it commits) while the second one's dump is under way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.core import db
from flows.core.policy import settings
from tests.conftest import Database, human_lines
from tests.partitions_fixtures import count
from tests.test_retention import LE, _expired_names

ROOT = Path(__file__).parents[1]
ROWS_A_MONTH = 250_000


def _wait_for(what: str, ok: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ok():
                return
            if proc.poll() is not None:
                pytest.fail(
                    f"{what}: the run ended first ({proc.returncode}): {proc.communicate()[1][-3000:]}"
                )
            time.sleep(0.05)
        pytest.fail(f"{what}: not within {timeout} s")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


@pytest.fixture
def dump_mode(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Database, Path]:
    """learning_events with two expired months of ROWS_A_MONTH rows each, dump-mode retention."""
    dump_dir = tmp_path / "dumps"
    config = tmp_path / "policy.toml"
    config.write_text(
        '[partitions.tables.learning_events]\nretention = "1 month"\npremake = 1\narchive = "dump"\n'
        "[partitions.tables.system_performance_metrics]\nenabled = false\n"
        f'[retention]\ndump_dir = "{dump_dir}"\n'
        + "".join(
            f"[retention.plain.{t}]\nenabled = false\n"
            for t in (
                "query_performance_logs",
                "llm_interactions",
                "pgtender_operations",
                "data_quality_checks",
            )
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    with migrated_db.connect() as conn:
        expired = _expired_names(conn, LE, "1 month")
        assert len(expired) == 2, expired
        for name in expired:
            conn.execute(
                "INSERT INTO learning_events (occurred_at, event_type, payload)"
                " SELECT lower + (g %% 1000) * interval '1 minute', 'old', jsonb_build_object('g', g, 'pad', md5(g::text))"
                " FROM (SELECT (regexp_match(pg_get_expr(relpartbound, oid), 'FROM \\(''([^'']*)''\\)'))[1]::timestamptz"
                "       AS lower FROM pg_class WHERE relname = %s) b, generate_series(1, %s) g",
                (name, ROWS_A_MONTH),
            )
    return migrated_db, dump_dir


def _ledger(database: Database) -> list[tuple[str, dict[str, Any], str | None]]:
    with database.connect() as conn:
        return conn.execute(
            "SELECT status, counts, error FROM pgtender_operations WHERE job = 'retention' ORDER BY started_at"
        ).fetchall()


def _one_partition_gone(database: Database) -> bool:
    rows = _ledger(database)
    return bool(rows) and rows[-1][0] == "started" and rows[-1][1].get("partitions_expired", 0) >= 1


def _nothing_lost(database: Database, total: int, dump_dir: Path) -> None:
    """The next run finishes the job: every row is either still in the table or in exactly one dump."""
    with db.connect(database.dsn, autocommit=True) as conn:
        from flows import retention

        retention.expire_all(conn, settings.current_policy(), state_dir=dump_dir.parent)
        left = count(conn, LE)
    import json

    dumped = sum(json.loads(p.read_text())["rows"] for p in dump_dir.glob("*.json"))
    assert left + dumped == total and dumped == 2 * ROWS_A_MONTH


def test_sigterm_stops_a_plain_cli_run_at_a_safe_point(dump_mode: tuple[Database, Path]) -> None:
    database, dump_dir = dump_mode
    total = database.scalar("SELECT count(*) FROM learning_events")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.edge.cli", "run", "retention"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for("the first expired partition gone", lambda: _one_partition_gone(database), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, (proc.returncode, err[-3000:])
    (line,) = human_lines(err)
    assert line.startswith("retention: interrupted: retention stopped at a safe point on SIGTERM; done: ")
    assert "partitions_expired=1" in line and f"rows_removed={ROWS_A_MONTH}" in line, line
    assert "Traceback" not in err and not out.strip()
    ((status, counts, error),) = _ledger(database)
    assert (
        status == "interrupted"
        and counts["partitions_expired"] == 1
        and counts["rows_removed"] == ROWS_A_MONTH
    )
    assert error == line.removeprefix("retention: interrupted: ")
    _nothing_lost(database, total, dump_dir)


@pytest.mark.usefixtures("prefect_api")
def test_sigterm_stops_a_flow_run_process_which_ends_cancelled(dump_mode: tuple[Database, Path]) -> None:
    """The process a served deployment's runner or a worker starts for a flow run."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from flows.edge.flows import flow_for
    from flows.registry import REGISTRY

    database, dump_dir = dump_mode
    total = database.scalar("SELECT count(*) FROM learning_events")
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(flow_for(REGISTRY.get("retention")), parameters={})
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect.engine", str(flow_run.id)],
        cwd=ROOT,
        env={
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT__FLOW_ENTRYPOINT": "flows.edge.entrypoints.retention",
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for("the first expired partition gone", lambda: _one_partition_gone(database), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.is_final(), (state, err[-3000:])
    assert state.is_cancelled() and state.name == "Cancelled", (state.name, state.message)
    assert (state.message or "").startswith("Interrupted: retention stopped at a safe point on SIGTERM")
    assert "Traceback" not in err, err[-3000:]
    ((status, counts, _),) = _ledger(database)
    assert status == "interrupted" and counts["partitions_expired"] == 1
    _nothing_lost(database, total, dump_dir)


@pytest.mark.slow
@pytest.mark.parametrize("to", ["process", "group"])
def test_sigterm_to_serve_stops_its_runs_at_a_safe_point_and_serve_exits_0(
    dump_mode: tuple[Database, Path], tmp_path: Path, to: str
) -> None:
    """`pgtender serve` stopped while it runs a deployment's flow run. ``process``: only serve gets
    the signal (``docker stop`` signals a container's first process); it passes it on to the run.
    ``group``: serve and the run both get it (systemd signals the whole control group) and the run
    also gets serve's copy: one stop, not the "second SIGTERM: now" of signals.py. Either way the
    run stops at its next safe point, ends Cancelled "Interrupted: ...", and serve exits 0."""
    from tests.serve_fixtures import serving

    database, dump_dir = dump_mode
    total = database.scalar("SELECT count(*) FROM learning_events")
    with serving(database.dsn, tmp_path, policy_file=True) as served:
        deployment = served.deployment("retention")
        # the local server answers 503 while serve's registration keeps its SQLite store busy
        deadline = time.monotonic() + 60
        while (
            created := served.api.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
        ).status_code == 503:
            assert time.monotonic() < deadline, created.text
            time.sleep(0.5)
        assert created.status_code == 201, created.text
        flow_run = created.json()
        _wait_for("the first expired partition gone", lambda: _one_partition_gone(database), served.process)
        code = served.stop(group=to == "group", timeout=240)  # the run's dump ends well before
        shown = served.text()
        assert code == 0, shown[-3000:]
        assert '"runs": 1, "event": "SIGTERM received: stopping"' in shown, shown[-3000:]
        state = served.api.get(f"/flow_runs/{flow_run['id']}").json()["state"]
        assert state["type"] == "CANCELLED" and state["name"] == "Cancelled", (state, shown[-3000:])
        assert state["message"].startswith("Interrupted: retention stopped at a safe point on SIGTERM")
        ((status, counts, _),) = _ledger(database)
        assert status == "interrupted" and counts["partitions_expired"] == 1
        assert "Traceback" not in shown, shown[-3000:]
    _nothing_lost(database, total, dump_dir)


def test_a_second_sigterm_interrupts_unless_it_is_the_same_stop_delivered_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a run's process does with SIGTERMs (flows/edge/signals.py), in this process."""
    from flows.edge import signals

    before = signal.getsignal(signal.SIGTERM)
    with signals.stop_on_sigterm() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        _deliver()
        assert stop.is_set()  # the first: stop at the next safe point
        os.kill(os.getpid(), signal.SIGTERM)  # a group's signal and serve's copy: the same stop
        _deliver()
        monkeypatch.setattr(signals, "SAME_STOP_SECONDS", 0.0)
        time.sleep(0.01)
        with pytest.raises(KeyboardInterrupt):  # an operator's second one, later: now
            os.kill(os.getpid(), signal.SIGTERM)
            _deliver()
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def _deliver() -> None:
    """Python runs a signal's handler between bytecodes of the main thread: give it some."""
    for _ in range(1000):
        pass
