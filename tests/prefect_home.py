"""Prefect's home for the whole test session: a temporary directory, never ``~/.prefect``.

``use_temporary_home()`` runs first thing in tests/conftest.py, before anything imports Prefect:
``PREFECT_HOME`` (and with it the profile, the memo store, the local result storage, the SQLite
database) points at a fresh directory, and explicit overrides of those paths are dropped. The
guard (tests/home_guard/sitecustomize.py) watches ``~/.prefect`` in this process and in every
Python process the tests start; a write there fails the session, naming the paths.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

GUARD_DIR = Path(__file__).parent / "home_guard"
# Settings that would put Prefect's files somewhere of their own choosing.
PATH_OVERRIDES = (
    "PREFECT_PROFILES_PATH",
    "PREFECT_LOCAL_STORAGE_PATH",
    "PREFECT_RESULTS_LOCAL_STORAGE_PATH",
    "PREFECT_MEMO_STORE_PATH",
    "PREFECT_SERVER_MEMO_STORE_PATH",
    "PREFECT_LOGGING_SETTINGS_PATH",
    "PREFECT_LOGGING_CONFIG_PATH",
)


def user_prefect_home() -> Path:
    """Where Prefect keeps its files by default: ``~/.prefect``."""
    return Path.home() / ".prefect"


_session: Path | None = None


def use_temporary_home() -> Path:
    """Point Prefect at a fresh temporary home and start guarding ``~/.prefect`` (idempotent)."""
    global _session  # noqa: PLW0603 - one home per session
    if _session is not None:
        return _session
    assert "prefect" not in sys.modules, "Prefect was imported before its home was set"
    _session = Path(tempfile.mkdtemp(prefix="pgtender-tests-prefect-"))
    os.environ["PREFECT_HOME"] = str(_session / "home")
    for name in PATH_OVERRIDES:
        os.environ.pop(name, None)
    os.environ["PGTENDER_TEST_GUARDED"] = str(user_prefect_home())
    os.environ["PGTENDER_TEST_GUARD_LOG"] = str(_session / "guard.log")
    python_path = [str(GUARD_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(python_path)  # every Python process a test starts
    spec = importlib.util.spec_from_file_location("pgtender_test_home_guard", GUARD_DIR / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # and this one
    return _session


def guard_log() -> Path:
    return Path(os.environ["PGTENDER_TEST_GUARD_LOG"])


def writes_under_user_home() -> list[str]:
    """What the session wrote under ``~/.prefect`` so far (``pid event path`` lines)."""
    log = guard_log()
    return log.read_text(encoding="utf-8").splitlines() if log.is_file() else []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A write under ``~/.prefect`` fails the session."""
    written = writes_under_user_home()
    if written and exitstatus == pytest.ExitCode.OK:
        print(f"\n{len(written)} write(s) under {user_prefect_home()} during the tests: {written[:5]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session is not None:
        shutil.rmtree(_session, ignore_errors=True)
