"""Each job as a Prefect flow, made from its ``JobSpec``: the form's fields are the spec's
parameters (plus ``target``), the description its first paragraph, the body the engine.

The flow's final state is the one mapping of ``verdicts``: Completed, Failed or Cancelled with a
message that starts with how the run ended ("Problems found: ...") — Prefect's own state names, so
the UI lists every run. A Failed state carries no data (nothing pickled into result storage).

Prefect's engine raises a Failed flow's exception again after the run ended and logs it with its
traceback ("Engine execution exited with unexpected exception"), and logs a failed task run's
exception the same way: for pgtender's own errors (a step's database errors become those, one line)
that is a second, noisier copy of the one line the run already logged, so those records are dropped
(``quiet_known_failures``); any other exception (a bug) keeps its traceback.
"""

from __future__ import annotations

import inspect
import logging
import threading
import types
import typing
from typing import Annotated, Any, Literal

from flows.core.engine import JobSpec, RunReport, verdicts
from flows.core.engine import start as start_run
from flows.core.engine.forms import REPLAYABLE, TargetName
from flows.core.errors import PgtenderError
from flows.core.logs import ensure_configured, get_logger
from flows.edge.context import run_context
from flows.edge.orchestrator import PrefectOrchestrator
from flows.registry import REGISTRY

_flows: dict[str, Any] = {}
_lock = threading.Lock()


def _form_type(annotation: Any) -> Any:
    """The type the form shows: a replayable job name becomes the list of the registry's names."""
    if typing.get_origin(annotation) is Annotated:
        _base, *meta = typing.get_args(annotation)
        if REPLAYABLE in meta:
            return Literal[tuple(REGISTRY.replays())]
        return annotation
    args = typing.get_args(annotation)
    if not args:
        return annotation
    origin = typing.get_origin(annotation)
    resolved = tuple(_form_type(a) for a in args)
    if origin in (types.UnionType, typing.Union):
        return typing.Union[resolved]  # noqa: UP007 - built from a tuple
    return origin[resolved] if len(resolved) > 1 else origin[resolved[0]]


def signature(spec: JobSpec[Any]) -> inspect.Signature:
    """The flow's parameters: the spec's, then ``target``."""
    params = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if field.is_required() else field.default,
            # the type with its constraints (pattern, bounds): the form checks what the model would
            annotation=(
                Annotated[(_form_type(field.annotation), *field.metadata)]
                if field.metadata
                else _form_type(field.annotation)
            ),
        )
        for name, field in spec.params.model_fields.items()
    ]
    params.append(
        inspect.Parameter(
            "target", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=TargetName | None
        )
    )
    return inspect.Signature(params)


def docstring(spec: JobSpec[Any]) -> str:
    """The description, then ``Args:`` from the fields' descriptions (the form's help texts)."""
    lines = [spec.description, "", "Args:"]
    for name, field in spec.params.model_fields.items():
        lines.append(f"    {name}: {' '.join((field.description or name).split())}")
    lines.append("    target: The database (a [targets] name of the policy file). Empty: every target.")
    return "\n".join(lines)


def flow_for(spec: JobSpec[Any]) -> Any:
    """The Prefect flow of a job (made once per process)."""
    with _lock:
        made = _flows.get(spec.name)
        if made is not None:
            return made
    from prefect import flow  # noqa: PLC0415

    def body(**parameters: Any) -> Any:
        return run_flow(spec.name, parameters)

    body.__name__ = body.__qualname__ = f"{spec.name}_flow"
    body.__doc__ = docstring(spec)
    body.__signature__ = signature(spec)  # type: ignore[attr-defined]
    made = flow(name=spec.name, log_prints=False, validate_parameters=False, persist_result=False)(body)
    with _lock:
        return _flows.setdefault(spec.name, made)


def run_flow(job: str, parameters: dict[str, Any]) -> Any:
    """A flow run's body: the engine with Prefect as its orchestrator; the verdict as its state."""
    ensure_configured()
    quiet_known_failures()
    spec = REGISTRY.get(job)
    values = {k: v for k, v in parameters.items() if v is not None}
    try:
        context = run_context(PrefectOrchestrator())  # reads the policy file: bad input, one line
    except PgtenderError as exc:
        report = RunReport(job=job, results=[], error=exc)
        get_logger(job=job).error(f"{job} {report.verdict.kind}", line=report.verdict.line)
    else:
        report = start_run(spec, values, context)
    return verdicts.to_state(report.verdict, data=report.data())


class _KnownFailure(logging.Filter):
    """Drop Prefect's traceback of a run that ended with one of pgtender's verdicts."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if isinstance(exc, PgtenderError):
            return False
        message = " ".join(str(exc).split())
        return not any(message.startswith(f"{p}:") or message == p for p in verdicts.PREFIXES.values())


_filter = _KnownFailure()


def quiet_known_failures() -> None:
    """Install the filter on the loggers Prefect's engine reports a failed run with (idempotent)."""
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect.flow_engine"):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
