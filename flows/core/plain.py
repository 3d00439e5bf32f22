"""Plain mode: a job's core without Prefect (no flow run, no task runs, no artifacts, no API).

``pgtender run|backfill|report`` with no pgtender server running: the CLI says so in one line and
runs the job's flow function body (``flow.fn``) in plain mode. The lifecycle is the same (lock,
ledger start and finish, typed outcome); pgtender's tasks are plain calls (lost connections still
retried, as Prefect would: ``RETRY_DELAYS``); artifacts are skipped (the ledger and the tables
hold the results); no Prefect API is contacted, so no temporary server is started and nothing is
written under Prefect's home.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

_plain: contextvars.ContextVar[bool] = contextvars.ContextVar("pgtender_plain", default=False)


def is_plain() -> bool:
    return _plain.get()


@contextmanager
def plain_mode() -> Iterator[None]:
    token = _plain.set(True)
    try:
        yield
    finally:
        _plain.reset(token)


class PlainAware:
    """A Prefect task that, in plain mode, is a plain call (with the task's retries of lost
    connections); otherwise the task itself. Attributes are the task's."""

    def __init__(
        self,
        task: Any,
        retries: int,
        delays: tuple[float, ...],
        retry_on: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self._task = task
        self._retries = retries
        self._delays = delays
        self._retry_on = retry_on

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def with_options(self, **options: Any) -> PlainAware:
        retries = int(options.get("retries", self._retries) or 0)
        return PlainAware(self._task.with_options(**options), retries, self._delays, self._retry_on)

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        from flows.core.runtime import is_transient  # noqa: PLC0415 - runtime imports this module

        retry_on = self._retry_on or is_transient
        attempt = 0
        while True:
            try:
                return self._task.fn(*args, **kwargs)
            except Exception as exc:
                if attempt >= self._retries or not retry_on(exc):
                    raise
                time.sleep(self._delays[min(attempt, len(self._delays) - 1)])
                attempt += 1

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        if not _plain.get():
            return self._task(*args, return_state=return_state, **kwargs)
        if not return_state:
            return self._call(*args, **kwargs)
        from prefect.states import Completed, Failed  # noqa: PLC0415 - in-memory states only

        try:
            return Completed(data=self._call(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - a failed step is a Failed state, as with Prefect
            return Failed(message=str(exc), data=exc)


def artifact(kind: str, **kwargs: Any) -> Any:
    """``prefect.artifacts.create_<kind>_artifact(**kwargs)``; nothing in plain mode (a progress
    artifact gets a stand-in id that ``update_progress`` ignores)."""
    if _plain.get():
        return uuid4() if kind == "progress" else None
    import prefect.artifacts  # noqa: PLC0415

    create: Callable[..., Any] = getattr(prefect.artifacts, f"create_{kind}_artifact")
    return create(**kwargs)


def update_progress(artifact_id: UUID, progress: float) -> None:
    if _plain.get():
        return
    from prefect.artifacts import update_progress_artifact  # noqa: PLC0415

    update_progress_artifact(artifact_id, progress=progress)
