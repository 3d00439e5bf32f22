"""The tests' databases on a server: created from a template, dropped after the test.

Both statements are slow on a busy server for reasons of their own: CREATE DATABASE copies the
template (0.2 to 0.5 s), DROP DATABASE makes the server write a checkpoint (0.2 to 2 s). Neither
needs to hold up a test: ``spares`` clones the next database from a template while the current test
runs, ``dropper`` drops finished ones in the background. ``finish()`` waits for both, drops what was
cloned ahead and not used, and fails when a database was left behind.
"""

from __future__ import annotations

import queue
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import conninfo, sql


def _dsn_for(server_dsn: str, dbname: str) -> str:
    return conninfo.make_conninfo(server_dsn, dbname=dbname)


def _admin(server_dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(server_dsn, autocommit=True)


def over_tcp(server_dsn: str) -> bool:
    """Whether the test server is reached over TCP (the embedded one listens on a socket only)."""
    host = str(psycopg.conninfo.conninfo_to_dict(server_dsn).get("host") or "")
    return bool(host) and not host.startswith("/")


def holds_prefect_schema(server_dsn: str) -> bool:
    """Whether a Prefect server can keep its store on the test server: Prefect's PostgreSQL schema
    needs pg_trgm, which the embedded server does not ship."""
    with _admin(server_dsn) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").fetchone()
            is not None
        )


def _create_db(server_dsn: str, name: str, template: str | None = None) -> str:
    with _admin(server_dsn) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template or "template0")
            )
        )
    return _dsn_for(server_dsn, name)


def _drop_db(server_dsn: str, name: str) -> None:
    with _admin(server_dsn) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Dropper:
    """Drops databases in threads of their own. Each DROP DATABASE waits for a checkpoint, and the
    checkpoint one drop waits for serves every drop requested before it began: whatever piled up
    while a batch ran is dropped together, in parallel, as the next batch."""

    BATCH = 12

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.failed: list[str] = []

    def drop(self, server_dsn: str, name: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="drop-databases", daemon=True)
            self._thread.start()
        self._queue.put((server_dsn, name))

    def _drop(self, item: tuple[str, str]) -> None:
        try:
            _drop_db(*item)
        except psycopg.Error as exc:
            self.failed.append(f"{item[1]}: {exc}")

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=self.BATCH, thread_name_prefix="drop-database") as pool:
            done = False
            while not done:
                batch = [self._queue.get()]
                while len(batch) < self.BATCH and not self._queue.empty():
                    batch.append(self._queue.get())
                done = None in batch
                list(pool.map(self._drop, [item for item in batch if item is not None]))

    def finish(self) -> None:
        """Wait for every drop handed over so far."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


class Spares:
    """One database cloned ahead per (server, template): a test takes it, and the clone for the
    next test starts at once, in a thread of its own."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clone-databases")
        self._ahead: dict[tuple[str, str | None], Future[str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _clone(server_dsn: str, template: str | None) -> str:
        name = f"pgtender_t_{uuid.uuid4().hex[:12]}"
        _create_db(server_dsn, name, template=template)
        return name

    def take(self, server_dsn: str, template: str | None) -> str:
        """A fresh database cloned from ``template`` (None: an empty one); its name."""
        key = (server_dsn, template)
        with self._lock:
            ahead = self._ahead.pop(key, None)
            self._ahead[key] = self._pool.submit(self._clone, server_dsn, template)
        if ahead is not None:
            try:
                return ahead.result()
            except psycopg.Error:
                pass  # cloned while the server was busy elsewhere: clone now, and say so if it fails
        return self._clone(server_dsn, template)

    def forget(self, server_dsn: str, template: str) -> None:
        """``template`` is about to be dropped: drop its clone made ahead too."""
        with self._lock:
            ahead = self._ahead.pop((server_dsn, template), None)
        if ahead is not None:
            _drop_spare(ahead, server_dsn)

    def finish(self) -> None:
        with self._lock:
            ahead, self._ahead = self._ahead, {}
        for (server_dsn, _template), future in ahead.items():
            _drop_spare(future, server_dsn)


def _drop_spare(future: Future[str], server_dsn: str) -> None:
    try:
        name = future.result()
    except psycopg.Error:
        return  # never created
    dropper.drop(server_dsn, name)


dropper = Dropper()
spares = Spares()


def finish() -> None:
    """End of session: unused clones dropped, every drop done; a failed drop fails the session."""
    spares.finish()
    dropper.finish()
    failed, dropper.failed = dropper.failed, []
    assert not failed, f"databases left behind: {failed}"
