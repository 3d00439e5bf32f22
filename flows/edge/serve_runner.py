"""The runner `pgtender serve` and `pgtender up` serve the deployments with: Prefect's, stopped by
SIGTERM the way Ctrl-C stops ``asyncio.run`` (flows/edge/serving.py registers the deployments)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from typing import Any

from prefect.runner import Runner

from flows.core.logs import get_logger


class ServeRunner(Runner):
    """SIGTERM (a container stopped, `up` stopped) ends serving the way Ctrl-C does under
    ``asyncio.run``: the main task is cancelled, the runs in progress get the signal too (a
    container's stop reaches its first process only) and stop at their next safe point, the
    runner waits for them on its way out, serving returns and the process exits 0.

    Prefect's handler raised ``SystemExit`` wherever the loop was, and once `serve` ran on 60 s
    after the signal (CI, 2026-12-07; no stacks were captured: most likely the exit skipped the
    callback completing a thread's future, a run's ``process.join``). This one only cancels
    and wakes the loop; the rest happens in the loop (a log line written inside a signal
    handler can interrupt a write to the same stream). A second SIGTERM does not wait: it
    interrupts like a second Ctrl-C."""

    main: asyncio.Task[None] | None = None
    terminated = False

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        main = self.main
        if main is None or main.done() or self.terminated:
            raise KeyboardInterrupt  # the second one, or not serving (any more): now, like Ctrl-C
        self.terminated = True
        main.cancel()
        main.get_loop().call_soon_threadsafe(self.stop_runs)

    def stop_runs(self) -> None:
        """Pass SIGTERM on to every run's process; each stops at its next safe point."""
        manager = self._process_manager
        handles = [h for h in map(manager.get, manager.flow_run_ids()) if h is not None]
        get_logger(component="serve").info("SIGTERM received: stopping", runs=len(handles))
        for handle in handles:
            with contextlib.suppress(ProcessLookupError):  # it had ended
                handle.graceful_kill()

    async def serve(self) -> None:
        self.main = asyncio.current_task()
        if threading.current_thread() is threading.main_thread():  # as start(), which sets it later
            signal.signal(signal.SIGTERM, self.handle_sigterm)
        try:
            await self.start()
        except asyncio.CancelledError:
            if not self.terminated:
                raise  # Ctrl-C: asyncio.run turns it into KeyboardInterrupt
            # SIGTERM: the runner stopped its runs on the way out; serving ends normally
