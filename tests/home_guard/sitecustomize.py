"""Records every write under the directories the tests must never touch (``~/.prefect``).

tests/prefect_home.py loads this file into the pytest process and puts its directory first on
``PYTHONPATH``, so that every Python process a test starts (a CLI run, a Prefect server, a worker)
imports it as ``sitecustomize`` too. An audit hook (PEP 578) then appends each path opened for
writing, created, renamed or removed under ``PGTENDER_TEST_GUARDED`` (directories, separated by
``os.pathsep``) to the file ``PGTENDER_TEST_GUARD_LOG``, one line each; the session fails when it is
not empty. The interpreter's own ``sitecustomize`` (if any) is imported after it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is not imported: this runs in every process the tests start
if TYPE_CHECKING:
    from typing import Any

GUARDED_ENV = "PGTENDER_TEST_GUARDED"
LOG_ENV = "PGTENDER_TEST_GUARD_LOG"
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.symlink", "os.link"}


def install(guarded: list[str], log: str) -> None:
    """Audit this process: a write under ``guarded`` appends a line to ``log``."""
    roots = [os.path.abspath(g) for g in guarded if g]
    busy = False

    def under(path: Any) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        try:
            text = os.fsdecode(os.fspath(path))
        except TypeError:
            return None
        full = os.path.abspath(text)
        return full if any(full == r or full.startswith(r + os.sep) for r in roots) else None

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal busy
        if busy:
            return
        if event == "open":
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            if not (flags & _WRITE or any(c in mode for c in "wax+")):
                return
            paths = args[:1]
        elif event in _PATH_EVENTS:
            paths = args[:2] if event in {"os.rename", "os.symlink", "os.link"} else args[:1]
        else:
            return
        hits = [hit for hit in (under(p) for p in paths) if hit]
        if not hits:
            return
        busy = True
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                for hit in hits:
                    os.write(fd, f"{os.getpid()} {event} {hit}\n".encode())
            finally:
                os.close(fd)
        except OSError:
            pass
        finally:
            busy = False

    sys.addaudithook(hook)


def _from_environment() -> None:
    guarded, log = os.environ.get(GUARDED_ENV, ""), os.environ.get(LOG_ENV, "")
    if guarded and log:
        install(guarded.split(os.pathsep), log)


def _chain() -> None:
    """Run the interpreter's own sitecustomize, which this module hides on PYTHONPATH."""
    if __name__ != "sitecustomize":
        return
    import importlib.machinery  # only in the processes the tests start

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        import importlib.util

        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_from_environment()
_chain()
