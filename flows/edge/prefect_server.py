"""A local Prefect server (``prefect server start``) as a child process, for ``pgtender up``.

The ephemeral API Prefect starts in-process takes 14-25 s and sits near its own start timeout;
a real server under the state directory starts once and then serves the UI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flows.core.errors import InfrastructureError
from flows.core.telemetry import TELEMETRY_OFF


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalPrefectServer:
    process: subprocess.Popen[bytes]
    api_url: str
    ui_url: str
    log_path: Path

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:  # noqa: S310 - local URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_local_server(
    state_dir: Path, *, port: int | None = None, timeout: float = 120.0, database_url: str | None = None
) -> LocalPrefectServer:
    """Start ``prefect server start`` with its home under ``state_dir``; wait until it answers.
    ``database_url``: its store (``postgresql+asyncpg://``, ``flows.edge.prefect_store``); None:
    Prefect's default (SQLite under its home) or what the environment configures."""
    home = state_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **TELEMETRY_OFF, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url}
    if database_url is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log_path = home / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: Ctrl-C reaches us, we stop it in order
        )
    server = LocalPrefectServer(process, api_url, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InfrastructureError(f"prefect server exited with {process.returncode}; see {log_path}")
        if _healthy(api_url):
            return server
        time.sleep(0.5)
    server.stop()
    raise InfrastructureError(f"prefect server did not answer within {timeout:.0f} s; see {log_path}")
