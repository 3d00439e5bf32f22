"""`pgtender serve` as a process of its own, beside a local Prefect server of its own, as on a
user's machine; stopped the way a container or systemd stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.edge.prefect_server import LocalPrefectServer, start_local_server

ROOT = Path(__file__).parents[1]


@dataclass
class Served:
    server: LocalPrefectServer
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    api: httpx.Client

    def text(self) -> str:
        return self.log.read_text()

    def deployment(self, job: str, timeout: float = 180) -> dict[str, Any]:
        """The deployment ``job/job`` once `serve` has registered it."""
        deadline = time.monotonic() + timeout
        while (found := self.api.get(f"/deployments/name/{job}/{job}")).status_code != 200:
            assert self.process.poll() is None, self.text()[-3000:]
            if time.monotonic() > deadline:
                pytest.fail("pgtender serve registered no deployments: " + self.text()[-3000:])
            time.sleep(0.5)
        deployment: dict[str, Any] = found.json()
        return deployment

    def stop(self, *, group: bool, timeout: float) -> int:
        """SIGTERM to serve only (``group=False``: `docker stop`) or to its process group (systemd);
        its exit code. If it still runs after ``timeout`` (a hang guard, not a timing), every
        thread's stack goes into the failure."""
        if group:
            os.killpg(self.process.pid, signal.SIGTERM)
        else:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGABRT)  # PYTHONFAULTHANDLER: the stacks, into the log
            self.process.wait(timeout=30)
            pytest.fail(f"pgtender serve still ran {timeout} s after SIGTERM:\n" + self.text()[-12000:])


@contextlib.contextmanager
def serving(dsn: str, tmp_path: Path, *, policy_file: bool = False) -> Iterator[Served]:
    """A local Prefect server and `pgtender serve` against it and ``dsn``; both gone after.
    ``policy_file``: keep PGTENDER_CONFIG (a test's policy), else the defaults."""
    server = start_local_server(tmp_path / "server")
    env = {
        **os.environ,
        "PREFECT_API_URL": server.api_url,
        "PREFECT_HOME": str(tmp_path / "home"),
        "PGTENDER_DATABASE_URL": dsn,
        "PGTENDER_STATE_DIR": str(tmp_path / "state"),
        "PYTHONFAULTHANDLER": "1",
    }
    if not policy_file:
        env.pop("PGTENDER_CONFIG", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.edge.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with httpx.Client(base_url=server.api_url, timeout=30) as api:
            yield Served(server, process, log, env, api)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        server.stop()
