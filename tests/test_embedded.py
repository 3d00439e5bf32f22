from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from flows.core.policy import settings
from flows.edge import embedded


def test_embedded_server_starts_on_demand_and_is_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PGTENDER_DATABASE_URL", raising=False)
    monkeypatch.setenv("PGTENDER_STATE_DIR", str(tmp_path / "state"))
    try:
        dsn = settings.dsn(settings.load_settings(), embedded=embedded.embedded_dsn)
        assert dsn == settings.dsn(settings.load_settings(), embedded=embedded.embedded_dsn)  # same handle
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) >= 150000
        assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()
    finally:
        embedded.stop_embedded(tmp_path / "state")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the embedded server as another user")
def test_under_root_the_system_user_is_created_without_sbin_on_path(monkeypatch) -> None:
    # A root shell with a user's PATH (no /usr/sbin) is how try-fresh and many containers run:
    # pgserver's own `useradd` lookup fails there and the embedded server never starts.
    name = "pgtender-embed-t"
    subprocess.run(["/usr/sbin/userdel", name], capture_output=True, check=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert shutil.which("useradd") is None
    try:
        embedded.ensure_system_user(name)
        assert pwd.getpwnam(name).pw_shell == "/bin/bash"
        embedded.ensure_system_user(name)  # a second call finds it and does nothing
    finally:
        subprocess.run(["/usr/sbin/userdel", name], capture_output=True, check=False)
