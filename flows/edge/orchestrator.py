"""Prefect as the engine's orchestrator: a job's steps are task runs of the flow run, its artifacts
attach to it, and the Prefect API says which earlier runs have ended (``PrefectOrchestrator``).

Each step becomes one Prefect task (built once per process): retries of lost connections only
(``retry_on``), no cache (a step's first argument is the ``Run``, not something to hash), no tags
(Prefect looks up a tag concurrency limit for every tag of every task run: 0.08-0.15 s each here).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import structlog

from flows.core.engine.context import Run
from flows.core.engine.steps import Step, each_item, guarded
from flows.core.logs import get_logger

_tasks: dict[tuple[Step[Any], str], Any] = {}  # built Prefect tasks (code, not results)
_tasks_lock = threading.Lock()


def _retry_condition(step: Step[Any]) -> Any:
    def condition(_task: Any, _task_run: Any, state: Any) -> bool:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - an unreadable result is not a reason to retry
            return False
        return isinstance(exc, BaseException) and step.retry_on(exc)

    return condition


def _task(step: Step[Any], kind: str) -> Any:
    """The Prefect task of a step (``kind`` "call": the step itself; "each": a pass over items)."""
    key = (step, kind)
    with _tasks_lock:
        made = _tasks.get(key)
    if made is not None:
        return made
    from prefect import task  # noqa: PLC0415
    from prefect.cache_policies import NO_CACHE  # noqa: PLC0415

    if kind == "call":

        @functools.wraps(step.fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return guarded(step, *args, **kwargs)

        body: Any = call
        name, run_name = step.name, step.task_run_name
    else:

        def each(run: Run, items: list[str], args: tuple[Any, ...], state: _Pass) -> int:
            return each_item(
                step, run, args, results=state.results, failures=state.failures, pending=state.pending
            )

        body = each
        name, run_name = f"{step.name}-each", None
    made = task(
        name=name,
        retries=step.retries,
        retry_delay_seconds=[step.delays[min(i, len(step.delays) - 1)] for i in range(max(step.retries, 1))],
        retry_jitter_factor=0.5,
        retry_condition_fn=_retry_condition(step),
        cache_policy=NO_CACHE,
        task_run_name=run_name,
        persist_result=False,
    )(body)
    with _tasks_lock:
        return _tasks.setdefault(key, made)


class _Pass:
    """The state of one ``each`` task run across its retries (a plain object: Prefect copies the
    dicts and lists it finds in a task's parameters, it leaves other objects alone)."""

    def __init__(self, items: list[str]) -> None:
        self.pending = items
        self.results: dict[str, Any] = {}
        self.failures: dict[str, BaseException] = {}


class PrefectOrchestrator:
    """Inside a Prefect flow run: steps are its task runs, artifacts attach to it."""

    name = "prefect"

    def flow_run_id(self) -> str | None:
        from prefect.runtime import flow_run  # noqa: PLC0415

        run_id = flow_run.id
        return str(run_id) if run_id else None

    def call(self, step: Step[Any], run: Run, *args: Any, **kwargs: Any) -> Any:
        return _task(step, "call")(run, *args, **kwargs)

    def each(
        self, step: Step[Any], run: Run, items: Sequence[str], *args: Any
    ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        state = _Pass(list(items))
        if items:  # a lost connection fails the task run; Prefect's retry runs only the items left
            _task(step, "each")(run, list(items), args, state, return_state=True)
        return state.results, state.failures

    def artifact(self, kind: str, **kwargs: Any) -> Any:
        import prefect.artifacts  # noqa: PLC0415
        from prefect.exceptions import PrefectException  # noqa: PLC0415

        create = getattr(prefect.artifacts, f"create_{kind}_artifact")
        try:
            return create(**kwargs)
        except (PrefectException, httpx.HTTPError, OSError) as exc:  # the ledger and tables hold the results
            get_logger().warning("artifact not written", key=kwargs.get("key"), error=str(exc))
            return None

    def progress(self, artifact_id: Any, value: float) -> None:
        if artifact_id is None:
            return
        from prefect.artifacts import update_progress_artifact  # noqa: PLC0415

        update_progress_artifact(artifact_id, progress=value)

    def ended_runs(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        from prefect.client.orchestration import get_client  # noqa: PLC0415
        from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

        ended: dict[str, str] = {}
        try:
            with get_client(sync_client=True) as client:
                for flow_run_id in flow_run_ids:
                    try:
                        state = client.read_flow_run(flow_run_id).state  # type: ignore[arg-type]
                    except ObjectNotFound:  # another server's run: judged by its session alone
                        continue
                    if state is not None and state.is_final():
                        ended[flow_run_id] = str(state.name)
        except (httpx.HTTPError, OSError) as exc:
            structlog.get_logger("pgtender").warning(
                "Prefect API unavailable: open runs judged by their session only", error=str(exc)
            )
        return ended
