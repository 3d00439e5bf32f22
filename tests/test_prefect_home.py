"""The tests never write under ~/.prefect: Prefect's home is a temporary directory for the whole
session (tests/prefect_home.py), in this process and in every process a test starts, and a guard
records any write under ~/.prefect (tests/home_guard/sitecustomize.py); such a write fails the
session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import prefect_home

SETTINGS = (
    "import json; from prefect.settings import get_current_settings as g; s = g();"
    " print(json.dumps([str(s.home), str(s.profiles_path), str(s.results.local_storage_path),"
    " str(s.server.memo_store_path), s.server.database.connection_url.get_secret_value()]))"
)


def _under(path: str, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def test_prefect_keeps_its_files_in_the_sessions_home() -> None:
    from prefect.settings import get_current_settings

    home = Path(os.environ["PREFECT_HOME"])
    assert not _under(str(home), prefect_home.user_prefect_home())
    settings = get_current_settings()
    assert settings.home.resolve() == home.resolve()
    for path in (
        settings.profiles_path,
        settings.results.local_storage_path,
        settings.server.memo_store_path,
    ):
        assert _under(str(path), home), path


def test_a_process_the_tests_start_keeps_them_there_too(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SETTINGS], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    home = Path(os.environ["PREFECT_HOME"])
    paths = json.loads(out.stdout)
    assert all(_under(p, home) for p in paths[:4]), paths
    assert str(home) in paths[4]  # Prefect's own SQLite database, if one is ever made


def test_the_guard_records_writes_under_a_guarded_directory(tmp_path: Path) -> None:
    guarded, log = tmp_path / "guarded", tmp_path / "guard.log"
    guarded.mkdir()
    (guarded / "old").write_text("x", encoding="utf-8")
    code = (
        "import os, pathlib, sys; g = pathlib.Path(sys.argv[1]);"
        " (g / 'old').read_text();"  # reading is fine
        " (g / 'storage').mkdir(); (g / 'storage' / 'pickled').write_bytes(b'x');"
        " os.replace(g / 'old', g / 'memo_store.toml')"
    )
    env = {**os.environ, "PGTENDER_TEST_GUARDED": str(guarded), "PGTENDER_TEST_GUARD_LOG": str(log)}
    subprocess.run([sys.executable, "-c", code, str(guarded)], env=env, check=True)
    events = [line.split(" ", 2)[1:] for line in log.read_text(encoding="utf-8").splitlines()]
    assert events == [
        ["os.mkdir", str(guarded / "storage")],
        ["open", str(guarded / "storage" / "pickled")],
        ["os.rename", str(guarded / "old")],
        ["os.rename", str(guarded / "memo_store.toml")],
    ]


def test_nothing_was_written_under_the_users_prefect_home_so_far() -> None:
    """The session's own check (at its end) looks at the same record."""
    assert os.environ["PGTENDER_TEST_GUARDED"] == str(prefect_home.user_prefect_home())
    assert prefect_home.writes_under_user_home() == []
