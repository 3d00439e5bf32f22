"""What the engine is given (``RunContext``) and what a job's work is given (``Run``).

Nothing here reads a context variable or a module global: the caller (the CLI, a served or
worker flow run) builds the context explicitly — which orchestrator runs the steps (Prefect, or
plain calls when no server runs), the registry of jobs, where state lives, what happens after a
run (the alerts layer's hook) — and the engine hands each target's work a ``Run`` carrying its
target, policy, connections and ledger row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from flows.core import db, fence, locks
from flows.core.db import load_sql
from flows.core.errors import Interrupted, LockLost, PgtenderError
from flows.core.logs import get_logger

if TYPE_CHECKING:
    from flows.core.engine.report import TargetResult
    from flows.core.engine.spec import JobSpec, Params, Registry
    from flows.core.engine.steps import Step
    from flows.core.fleet.targets import Embedded, Target
    from flows.core.ledger import Abandoned
    from flows.core.policy.settings import Policy, Settings

Conn = psycopg.Connection[tuple[Any, ...]]


class Orchestrator(Protocol):
    """Who runs a job's steps and keeps its artifacts: Prefect (a flow run), or nobody (plain)."""

    name: str

    def flow_run_id(self) -> str | None: ...

    def call(self, step: Step[Any], run: Run, *args: Any, **kwargs: Any) -> Any: ...

    def each(
        self, step: Step[Any], run: Run, items: Sequence[str], *args: Any
    ) -> tuple[dict[str, Any], dict[str, BaseException]]: ...

    def artifact(self, kind: str, **kwargs: Any) -> Any: ...

    def progress(self, artifact_id: Any, value: float) -> None: ...

    def ended_runs(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        """Flow run id -> the final state name, for the runs this orchestrator knows have ended."""
        ...


@dataclass(frozen=True, kw_only=True)
class Finished:
    """What the after-run hook is told about one target's run."""

    job: str
    target: Target
    result: TargetResult
    state_dir: Path  # the target's own
    abandoned: Sequence[Abandoned] = ()
    flow_run_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Everything the engine needs besides the job and its parameters."""

    orchestrator: Orchestrator
    registry: Registry
    settings: Settings
    policy: Policy  # the policy file's (each target has its own, with its overrides)
    embedded: Embedded | None = None  # how to reach the embedded server (the edge starts it)
    after: Callable[[Finished], None] | None = None  # the alerts layer: job.<job> pages and resolves
    stop: threading.Event = field(default_factory=threading.Event)  # set on SIGTERM: stop at a safe point
    # Before any target is touched, each target's policy (the alerts layer: its channels' secrets
    # are set): a ConfigError is bad input, exit 2, nothing run.
    check: Callable[[Policy], None] | None = None

    @property
    def state_dir(self) -> Path:
        """The process's; a fleet target's own is ``Target.state_dir(state_dir)``."""
        return self.settings.state_dir

    @property
    def application_name(self) -> str:
        return self.settings.application_name


class Run:
    """One run of a job on one target, as its work sees it."""

    def __init__(
        self,
        *,
        spec: JobSpec[Any],
        params: Params,
        target: Target,
        context: RunContext,
        session: Conn,
        lock_names: list[str],
        operation_id: UUID,
        started_at: datetime,
        abandoned: Sequence[Abandoned] = (),
    ) -> None:
        self.spec = spec
        self.params = params
        self.target = target
        self.context = context
        self.operation_id = operation_id
        self.started_at = started_at  # the database's now() when the run began
        self.abandoned = list(abandoned)  # earlier runs of the job found dead by this one
        self.flow_run_id = context.orchestrator.flow_run_id()
        self._session = session
        self._lock_names = lock_names
        self._counts: dict[str, Any] = {}
        self._fence: dict[str, int] = {}  # lock name -> fencing token (``take_fence``)
        self._session_lock = threading.RLock()  # steps may run in the fleet's threads
        self.log = get_logger(job=spec.name, target=target.name)

    # ---------------------------------------------------------------- what the work reads

    @property
    def job(self) -> str:
        return self.spec.name

    @property
    def policy(self) -> Policy:
        return self.target.policy

    @property
    def orchestrator(self) -> Orchestrator:
        return self.context.orchestrator

    @property
    def registry(self) -> Registry:
        return self.context.registry

    @property
    def state_dir(self) -> Path:
        return self.target.state_dir(self.context.state_dir)

    @property
    def session_pid(self) -> int:
        """The backend pid of the run's own session (it holds the locks and the ledger row)."""
        return self._session.info.backend_pid

    @property
    def counts(self) -> dict[str, Any]:
        return dict(self._counts)

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """An autocommit connection to the target, from the process pool. Each transaction opened
        on it (``with conn.transaction():``) first checks the run's fence (``fence``)."""
        with db.pooled(
            self.target.dsn,
            policy=self.policy.database,
            application_name=self.context.application_name,
            name=self.target.name,
        ) as conn:
            conn.on_begin = self.fence
            try:
                yield conn
            finally:
                conn.on_begin = None

    def artifact(self, kind: str, **kwargs: Any) -> Any:
        return self.orchestrator.artifact(kind, **kwargs)

    # ---------------------------------------------------------------- what the work writes

    def record(self, **counts: Any) -> None:
        """Counts of what the run did, written to its ledger row now (a run that dies later still
        says what it had done): call it as each step commits."""
        self._counts.update(counts)
        with self._session_lock:
            self.check_lock()
            self._session.execute(
                load_sql("queries/ledger/progress.sql"),
                {"operation_id": self.operation_id, "counts": Jsonb(counts)},
            )

    def add(self, **deltas: float) -> None:
        """Add to counts (rows moved, partitions dropped) and write the totals now."""
        self.record(**{k: self._counts.get(k, 0) + v for k, v in deltas.items()})

    # ---------------------------------------------------------------- the lock, fenced

    def take_fence(self) -> None:
        """Once the locks are held: their fences (waits for, then cancels, the transaction still in
        flight of a run that held them before)."""
        with self._session_lock:
            self._fence = fence.take(self._session, self._lock_names, self.operation_id, log=self.log)

    def release_fence(self) -> None:
        with self._session_lock:
            if self._fence and not self._session.closed:
                fence.release(self._session, self._lock_names, self.operation_id)

    def fence(self, conn: Conn) -> None:
        """First in each transaction of the work (``connection()`` runs it): ``LockLost`` when another
        run took the lock over, or when the run's own session ended (its locks went with it: the run
        taking over may not have updated the fence yet — it waits for this run's last transaction,
        and this run could begin its next one first). The fence rows stay locked until the
        transaction ends, so a session that dies after the ping still holds the next run off."""
        if self._fence:
            fence.check(conn, self._fence, self.operation_id, job=self.job)
            if not self._session_answers():
                lost = self.lost_lock()
                if lost is not None:
                    raise lost

    def _session_answers(self) -> bool:
        with self._session_lock:
            if self._session.closed:
                return False
            try:
                self._session.execute(load_sql("queries/session/ping.sql"))
            except psycopg.OperationalError:
                return False
        return True

    def done_so_far(self) -> str:
        """What the run did, for the line of a run that stopped early."""
        shown = [f"{k}={v}" for k, v in self._counts.items() if isinstance(v, int | float) and v]
        return ", ".join(shown) if shown else "nothing yet"

    def check_lock(self) -> None:
        """Between steps: ``Interrupted`` after SIGTERM, ``LockLost`` when the run's session no longer
        holds its locks (another run may be working now): stop before doing anything else."""
        self.check_stop()
        lost = self.lost_lock()
        if lost is not None:
            raise lost

    def _unreachable(self) -> str | None:
        """Why a new connection to the target fails now (its session ended with it), or None."""
        try:
            db.connect(
                self.target.dsn,
                policy=self.policy.database,
                application_name=f"{self.context.application_name}-probe",
                autocommit=True,
            ).close()
        except PgtenderError as exc:
            return str(exc)
        return None

    def check_stop(self) -> None:
        """``Interrupted`` after SIGTERM (no round trip: cheap enough for every chunk of a COPY)."""
        if self.context.stop.is_set():
            raise Interrupted(
                f"{self.job} stopped at a safe point on SIGTERM; done so far: {self.done_so_far()}"
            )

    def lost_lock(self) -> LockLost | None:
        """``LockLost`` when the run's session no longer holds its locks, else None."""
        with self._session_lock:
            held = not self._session.closed and all(locks.holds(self._session, n) for n in self._lock_names)
        if held:
            return None
        unreachable = self._unreachable()
        if unreachable is not None:  # the database went away: that, not the lock, is the news
            return LockLost(
                f"{self.job}: the database became unreachable during the run ({unreachable}): stopped;"
                f" done so far: {self.done_so_far()}"
            )
        return LockLost(
            f"{self.job} lost its advisory lock (its session ended): stopped before the next step;"
            f" another run may hold the lock now; done so far: {self.done_so_far()}"
        )
