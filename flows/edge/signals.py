"""SIGTERM — what Kubernetes, systemd and Prefect's cancellation send — stops a run at its next
safe point: the handler only sets the run context's ``stop`` event, which every step's
``Run.check_lock()`` honours; the run then records ``interrupted`` with its counts, the command
prints one line and exits 143 (a flow run ends Cancelled "Interrupted: ..."). A second SIGTERM does
not wait for the safe point: it interrupts like Ctrl-C (still recorded ``interrupted``) — unless it
comes within ``SAME_STOP_SECONDS`` of the first: then it is the same stop delivered twice, as when
systemd signals a whole control group and `pgtender serve` passes the signal on to its runs too.

Installed where a run starts in a process's main thread: ``pgtender run`` / ``backfill``, and the
body of a served or worker flow run, where it stands in for Prefect's own handler (which raises
``TerminationSignal`` wherever the code is, and marks the run Crashed) until the body returns.
Elsewhere (another thread) nothing is installed and the event is only what the caller sets.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SAME_STOP_SECONDS = 2.0


@contextmanager
def stop_on_sigterm(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """While the block runs, SIGTERM sets ``stop`` (a new event unless given); restored after."""
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    first: list[float] = []  # when this handler first saw SIGTERM

    def handler(_signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        if not first:
            first.append(now)
            stop.set()
        elif now - first[0] > SAME_STOP_SECONDS:
            raise KeyboardInterrupt  # the second one: now, not at the next safe point

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["stop_on_sigterm"]
