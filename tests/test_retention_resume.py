"""Issue 12.4: dump-mode retention killed at any step is finished by the next run: nothing left
detached, one manifest per partition, no partial files, and a dump is never restored twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from flows import retention
from flows.core import clock, db
from flows.core.errors import ConfigError
from flows.core.partitioning import catalog
from flows.core.policy import settings
from flows.retention import partitioned, restore
from tests.conftest import Database
from tests.partitions_fixtures import count, partitions_of, rows_digest
from tests.test_retention import LE, SPM, _expired_names, _load_months, _only_plain, _policy

STEPS = ["copying", "copied", "data-renamed", "manifest-written", "detached", "dropped"]


class Killed(BaseException):
    """Stands in for kill -9 at one step: nothing after it runs (no except Exception catches it)."""


def kill_at(step: str) -> Any:
    def hook(reached: str) -> None:
        if reached == step:
            raise Killed(step)

    return hook


def _dump_policy(tmp_path: Path) -> settings.Policy:
    return _policy(
        {LE: {"retention": "2 months", "premake": 1, "archive": "dump"}, SPM: {"enabled": False}},
        tmp_path,
        plain=_only_plain(),
    )


def _target(conn: Any, pol: settings.Policy) -> catalog.Target:
    (target,) = catalog.resolve_targets(conn, {LE: pol.partitions.tables[LE]})
    return target


def _killed_run(conn: Any, pol: settings.Policy, dump_dir: Path, step: str) -> None:
    """One dump-mode expiry of learning_events, stopped dead at ``step``."""
    with pytest.raises(Killed):
        partitioned.expire_partitions(
            conn,
            _target(conn, pol),
            pol.retention,
            now=clock.db_now(conn),
            dump_dir=dump_dir,
            log=retention.get_logger(),
            on_step=kill_at(step),
        )


def _loaded(conn: Any) -> tuple[list[str], dict[str, str]]:
    """Load the months; the partitions a 2-month retention expires and their rows' digests."""
    _load_months(conn)
    expired = _expired_names(conn, LE, "2 months")
    assert expired
    return expired, {p: rows_digest(conn, p) for p in expired}


def _exists(conn: Any, name: str) -> bool:
    return conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(name).as_string(conn),)
    ).fetchone()[0]


def _is_marked_standalone(conn: Any, name: str) -> bool:
    row = conn.execute(
        "SELECT NOT relispartition AND starts_with(obj_description(oid, 'pg_class'), 'pgtender retention:')"
        " FROM pg_class WHERE oid = to_regclass(%s)",
        (sql.Identifier(name).as_string(conn),),
    ).fetchone()
    return bool(row and row[0])


def _assert_finished(conn: Any, dump_dir: Path, expired: list[str], digests: dict[str, str]) -> None:
    """Every expired partition gone, exactly one verified manifest each (recording its drop), no
    partial or orphaned file, and each dump restores to the very rows it had — once."""
    for name in expired:
        assert not _exists(conn, name), f"{name} is still there"
    manifests = [json.loads(p.read_text()) for p in sorted(dump_dir.glob("*.json"))]
    assert sorted(m["partition"] for m in manifests) == sorted(expired)  # one each
    assert all(m.get("dropped_at") for m in manifests)
    assert not list(dump_dir.glob("*.partial"))
    assert sorted(p.name for p in dump_dir.glob("*.copy.gz")) == sorted(m["file"] for m in manifests)
    for manifest_path in sorted(dump_dir.glob("*.json")):
        name = json.loads(manifest_path.read_text())["partition"]
        restored = f"restored_{name}"
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE learning_events)").format(sql.Identifier(restored)))
        restore.restore_dump(conn, manifest_path, schema="public", table=restored)
        assert rows_digest(conn, restored) == digests[name]
        with pytest.raises(ConfigError, match="restored before, or never dropped"):
            restore.restore_dump(conn, manifest_path, schema="public", table=restored)
        assert rows_digest(conn, restored) == digests[name]


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_at_each_step_is_finished_by_the_next(
    step: str, migrated_db: Database, tmp_path: Path
) -> None:
    pol = _dump_policy(tmp_path)
    dump_dir = tmp_path / "dumps"
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        expired, digests = _loaded(conn)
        total, doomed = count(conn, LE), sum(count(conn, p) for p in expired)
        first = expired[0]
        first_rows = count(conn, first)
        _killed_run(conn, pol, dump_dir, step)
        # what the killed run left behind, step by step
        attached = first in partitions_of(conn, LE)
        assert attached == (step in {"copying", "copied", "data-renamed", "manifest-written"})
        assert _is_marked_standalone(conn, first) == (step == "detached")
        assert _exists(conn, first) == (step != "dropped")
        if step in {"copying", "copied"}:
            assert list(dump_dir.glob("*.partial"))
        assert count(conn, LE) == (total if attached else total - first_rows)
        if step == "detached":
            assert count(conn, first) == first_rows  # standalone, its rows intact

        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert count(conn, LE) == total - doomed
        finished = [a for a in outcome.actions if a.steps[0].startswith("finish")]
        assert [a.partition for a in finished] == ([first] if step == "detached" else [])
        _assert_finished(conn, dump_dir, expired, digests)
        (again,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        assert again.actions == []


def test_dry_run_names_a_detached_partition_and_changes_nothing(
    migrated_db: Database, tmp_path: Path
) -> None:
    pol = _dump_policy(tmp_path)
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        first = _expired_names(conn, LE, "2 months")[0]
        rows = count(conn, first)
        _killed_run(conn, pol, tmp_path / "dumps", "detached")
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path, dry_run=True)
        (pending,) = [a for a in outcome.actions if a.partition == first]
        assert pending.steps == ["finish: drop"] and pending.rows == rows
        assert _is_marked_standalone(conn, first) and count(conn, first) == rows


def test_a_detached_table_whose_dump_is_gone_is_dumped_again_before_its_drop(
    migrated_db: Database, tmp_path: Path
) -> None:
    pol = _dump_policy(tmp_path)
    dump_dir = tmp_path / "dumps"
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        expired, digests = _loaded(conn)
        _killed_run(conn, pol, dump_dir, "detached")
        for path in dump_dir.iterdir():  # an operator cleaned the directory meanwhile
            path.unlink()
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        (finished,) = [a for a in outcome.actions if a.partition == expired[0]]
        assert finished.steps == ["finish: dump", "finish: drop"]
        _assert_finished(conn, dump_dir, expired, digests)


def test_restore_refuses_a_partition_that_is_still_there(migrated_db: Database, tmp_path: Path) -> None:
    """Killed after the manifest, before the detach: the dump exists and so do its rows. Restoring
    that dump into the table would double them."""
    pol = _dump_policy(tmp_path)
    dump_dir = tmp_path / "dumps"
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        total = count(conn, LE)
        _killed_run(conn, pol, dump_dir, "manifest-written")
        (manifest_path,) = dump_dir.glob("*.json")
        with pytest.raises(ConfigError, match="already holds"):
            restore.restore_dump(conn, manifest_path, schema="public", table=LE)
        assert count(conn, LE) == total


def test_restore_into_the_parent_after_the_drop_happens_once(migrated_db: Database, tmp_path: Path) -> None:
    pol = _dump_policy(tmp_path)
    dump_dir = tmp_path / "dumps"
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        total = count(conn, LE)
        (outcome,) = retention.expire_all(conn, pol, state_dir=tmp_path)
        after = count(conn, LE)
        assert after == total - outcome.rows_removed
        for manifest_path in sorted(dump_dir.glob("*.json")):  # rows land in DEFAULT
            restore.restore_dump(conn, manifest_path, schema="public", table=LE)
        assert count(conn, LE) == total
        for manifest_path in sorted(dump_dir.glob("*.json")):
            with pytest.raises(ConfigError, match="already holds"):
                restore.restore_dump(conn, manifest_path, schema="public", table=LE)
        assert count(conn, LE) == total


KILLER = """
import os, signal, sys
from flows.core import clock, db
from flows.core.partitioning import catalog
from flows.core.policy import settings
from flows.retention import partitioned

def hook(step):
    if step == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)

policy = settings.current_policy()
with db.connect(settings.dsn(settings.load_settings()), autocommit=True) as conn:
    (target,) = catalog.resolve_targets(conn, {"learning_events": policy.partitions.tables["learning_events"]})
    partitioned.expire_partitions(conn, target, policy.retention, now=clock.db_now(conn),
                                dump_dir=policy.retention.dump_dir, on_step=hook)
print("not killed")
"""


def test_a_real_kill_9_between_detach_and_drop(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, with the process really SIGKILLed at the step (no cleanup code runs at all)."""
    dump_dir = tmp_path / "dumps"
    config = tmp_path / "policy.toml"
    config.write_text(
        "[partitions]\nlock_timeout_ms = 100\n"
        '[partitions.tables.learning_events]\nretention = "2 months"\npremake = 1\narchive = "dump"\n'
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
        )
    )
    monkeypatch.setenv("PGTENDER_CONFIG", str(config))
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        expired = _expired_names(conn, LE, "2 months")
        digests = {p: rows_digest(conn, p) for p in expired}
        total, doomed = count(conn, LE), sum(count(conn, p) for p in expired)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, "detached"],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        assert _is_marked_standalone(conn, expired[0])
        (outcome,) = retention.expire_all(conn, settings.current_policy(), state_dir=tmp_path)
        assert [a.partition for a in outcome.actions if a.steps == ["finish: drop"]] == [expired[0]]
        assert count(conn, LE) == total - doomed
        _assert_finished(conn, dump_dir, expired, digests)


def test_partial_files_of_the_old_naming_are_removed(migrated_db: Database, tmp_path: Path) -> None:
    """Before resumable dumps a killed COPY left <schema>.<partition>.<stamp>.copy.partial forever."""
    pol = _dump_policy(tmp_path)
    dump_dir = tmp_path / "dumps"
    dump_dir.mkdir()
    with db.connect(migrated_db.dsn, autocommit=True) as conn:
        _load_months(conn)
        first = _expired_names(conn, LE, "2 months")[0]
        stale = dump_dir / f"public.{first}.20260101T000000Z.copy.partial"
        stale.write_bytes(b"half a dump")
        unrelated = dump_dir / "public.other_table_p20260101.20260101T000000Z.copy.partial"
        unrelated.write_bytes(b"not ours to judge")
        retention.expire_all(conn, pol, state_dir=tmp_path)
    assert not stale.exists()
    assert unrelated.exists()  # another table's: removed when that table is dumped again
