"""structlog, configured once at the entry point: JSON off a TTY, console on one; secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from flows.core.masking import mask_secrets

_configured = False


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, BaseException):
        return mask_secrets(str(value))
    if isinstance(value, Mapping):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no DSN password ever reaches a log line."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask_value(value)
    return event_dict


_API_LOGGER = "pgtender.flow_run"


def _api_logger() -> logging.Logger | None:
    """A stdlib logger that sends to the Prefect API only (no console: structlog prints already)."""
    logger = logging.getLogger(_API_LOGGER)
    if not logger.handlers:
        try:
            from prefect.logging.handlers import APILogHandler  # noqa: PLC0415
        except ImportError:  # pragma: no cover - prefect is a dependency
            return None
        logger.addHandler(APILogHandler())
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    return logger


def to_flow_run(_logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: inside a Prefect flow or task run, the line also goes to that run's
    logs (the UI's log tab, and ``pgtender run`` streaming a submitted run). Outside one: nothing."""
    context_module = sys.modules.get("prefect.context")
    if context_module is None:
        return event_dict
    if context_module.FlowRunContext.get() is None and context_module.TaskRunContext.get() is None:
        return event_dict
    logger = _api_logger()
    if logger is not None:
        fields = " ".join(
            f"{k}={v}" for k, v in event_dict.items() if k not in ("event", "level", "timestamp")
        )
        level = logging.getLevelName(str(event_dict.get("level", name)).upper())
        text = f"{event_dict.get('event', '')} {fields}".strip()
        logger.log(level if isinstance(level, int) else logging.INFO, text)
    return event_dict


def shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_processor,
        to_flow_run,
    ]


def configure_logging(*, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog for the process. Called by the CLI entry point only."""
    global _configured  # noqa: PLW0603 - process-wide, once
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # masked again after format_exc_info: a traceback carries exception messages of its own
        processors=[*shared_processors(), structlog.processors.format_exc_info, mask_processor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # stderr as it is when a line is written (a test runner or a daemon may swap it), not as it
        # was when logging was configured
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    _configured = True


def ensure_configured() -> None:
    """Configure logging in a process no pgtender entry point started (a served flow run's own
    process): its lines then reach the flow run's logs too."""
    if not structlog.is_configured():
        configure_logging()


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger("pgtender").bind(**initial)
