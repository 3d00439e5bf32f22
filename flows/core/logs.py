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


def shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_processor,
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


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger("pgtender").bind(**initial)
