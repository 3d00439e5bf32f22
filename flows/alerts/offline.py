"""The alert of a target whose database cannot be reached, kept where every worker sees it.

Every other alert lives in the tended database. When that database is what failed, its ``job.<job>``
page still has to go out once per outage, and the resolve once when it answers again, whichever
worker runs the job: the state is kept in a store all workers share, with atomic updates.

- ``PrefectStore`` (any run under Prefect: served, a worker, the CLI beside ``up``): a Prefect
  Variable per (job, target) holds the state; a global concurrency limit of one slot per target,
  taken with a lease, makes reading and writing it one step across every worker (the server counts
  slots in one transaction; a holder that dies loses its lease after ``LEASE_SECONDS``).
- ``FileStore`` (no Prefect API: the plain CLI, one machine): ``<state dir>/alerts/unreachable.json``
  under an exclusive ``flock``.

Delivery follows the outbox's rule: the page is recorded (``due``) before it is sent and marked
(``sent``) after, each its own write; a crash in between sends it again at the next run, with the
same dedup and delivery keys. A resolve deletes the record once a channel accepted it; a page that
never went out is dropped without a resolve.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import httpx

from flows.alerts import channels
from flows.alerts.notices import Delivery, Event, Notice
from flows.core import clock
from flows.core.policy.settings import Policy

# What a store raises when it cannot be reached or answers badly (the Prefect client: httpx errors,
# ValueError for a malformed answer, RuntimeError when no API is configured; the file: OSError).
STORE_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, OSError, RuntimeError, ValueError)
LEASE_SECONDS = 60  # Prefect's shortest lease; a hold lasts one delivery (``_hold_seconds``)
WAIT_SECONDS = 120.0  # for another worker's hold to end
# Every run of every target asks "is an outage of mine recorded?": one listing of the recorded
# outages answers a whole sweep (a few seconds stale at most: a resolve then waits one run).
LISTING_SECONDS = 10.0
_PREFIX = "pgtender_unreachable__"
_listing: dict[str, tuple[float, frozenset[str]]] = {}  # API URL -> (valid until, variable names)
_listing_lock = threading.Lock()


class Store(Protocol):
    """Where the unreachable targets' alert state lives, and the lock that serializes it."""

    def recorded(self, job: str, target: str) -> bool:
        """Cheap: False when no state of (job, target) is recorded (``get`` is the truth)."""
        ...

    def hold(self, target: str, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Held by one process at a time, for at most ``seconds`` (then another may take it)."""
        ...

    def get(self, job: str, target: str) -> dict[str, str] | None: ...

    def put(self, job: str, target: str, value: dict[str, str]) -> None: ...

    def delete(self, job: str, target: str) -> None: ...


class FileStore:
    """One machine: a JSON file under the state directory, under an exclusive flock."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "alerts" / "unreachable.json"

    @contextlib.contextmanager
    def hold(self, target: str, seconds: float) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / ".unreachable.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _all(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items() if isinstance(v, dict)
        }

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        if not data:
            self.path.unlink(missing_ok=True)
            return
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        partial.replace(self.path)

    def get(self, job: str, target: str) -> dict[str, str] | None:
        return self._all().get(f"{target}/job.{job}")

    def recorded(self, job: str, target: str) -> bool:
        return self.path.exists() and self.get(job, target) is not None

    def put(self, job: str, target: str, value: dict[str, str]) -> None:
        data = self._all()
        data[f"{target}/job.{job}"] = value
        self._write(data)

    def delete(self, job: str, target: str) -> None:
        data = self._all()
        data.pop(f"{target}/job.{job}", None)
        self._write(data)


class PrefectStore:
    """Every worker: a Prefect Variable per (job, target), a global concurrency limit as the mutex."""

    @staticmethod
    def variable(job: str, target: str) -> str:
        return f"{_PREFIX}{job}__{target}"

    def recorded(self, job: str, target: str) -> bool:
        """From one listing of every recorded outage, shared by the process for a few seconds."""
        from prefect.client.orchestration import get_client  # noqa: PLC0415
        from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

        api = str(PREFECT_API_URL.value() or "")
        with _listing_lock:
            cached = _listing.get(api)
        if cached is None or cached[0] <= time.monotonic():
            body = {"variables": {"name": {"like_": f"{_PREFIX}%"}}, "limit": 200}
            with get_client(sync_client=True) as client:
                found = client.request("POST", "/variables/filter", json=body).json()
            names = frozenset(str(v["name"]) for v in found if str(v["name"]).startswith(_PREFIX))
            cached = (time.monotonic() + LISTING_SECONDS, names)
            with _listing_lock:
                _listing[api] = cached
        return self.variable(job, target) in cached[1]

    @staticmethod
    def limit(target: str) -> str:
        return f"pgtender-alerts-{target}"

    @contextlib.contextmanager
    def hold(self, target: str, seconds: float) -> Iterator[None]:
        from prefect.client.orchestration import get_client  # noqa: PLC0415 - only under Prefect

        with get_client(sync_client=True) as client:
            lease = _acquire(client, self.limit(target), max(LEASE_SECONDS, seconds))
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # not released: the lease expires on its own
                    client.release_concurrency_slots_with_lease(lease)

    def get(self, job: str, target: str) -> dict[str, str] | None:
        from prefect.client.orchestration import get_client  # noqa: PLC0415

        with get_client(sync_client=True) as client:
            found = client.read_variable_by_name(self.variable(job, target))
        value = found.value if found is not None else None
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None

    def put(self, job: str, target: str, value: dict[str, str]) -> None:
        from prefect.client.orchestration import get_client  # noqa: PLC0415
        from prefect.client.schemas.actions import VariableCreate, VariableUpdate  # noqa: PLC0415
        from prefect.exceptions import ObjectAlreadyExists  # noqa: PLC0415

        name = self.variable(job, target)
        _forget_listing()
        with get_client(sync_client=True) as client:
            try:
                client.create_variable(VariableCreate(name=name, value=value, tags=["pgtender"]))
            except ObjectAlreadyExists:
                client.update_variable(VariableUpdate(name=name, value=value))

    def delete(self, job: str, target: str) -> None:
        from prefect.client.orchestration import get_client  # noqa: PLC0415
        from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

        _forget_listing()
        with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
            client.delete_variable_by_name(self.variable(job, target))


def _forget_listing() -> None:
    with _listing_lock:
        _listing.clear()


def _acquire(client: Any, name: str, lease_seconds: float) -> UUID:
    """One slot of the limit ``name`` (created with one slot when missing), with a lease."""
    import httpx  # noqa: PLC0415
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate  # noqa: PLC0415
    from prefect.exceptions import ObjectAlreadyExists  # noqa: PLC0415

    ends = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=lease_seconds
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423 or time.monotonic() >= ends:  # 423: another worker holds it
                raise
            time.sleep(0.2 + random.random() * 0.3)  # noqa: S311 - jitter, not a secret
            continue
        body = response.json()
        if body.get("limits"):
            return UUID(str(body["lease_id"]))
        with contextlib.suppress(ObjectAlreadyExists):  # the first outage of this target
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def _notice(event: Event, job: str, target: str, policy: Policy, **fields: Any) -> Notice:
    now = clock.now()
    return Notice(
        event=event,
        target=target,
        check_name=f"job.{job}",
        subject="",
        source=f"job.{job}",
        since=fields.pop("since", now),
        at=now,
        runbook=policy.alerts.runbook_url,
        **fields,
    )


def _hold_seconds(policy: Policy) -> float:
    """One delivery on every channel (each bounded by its deadline) and the reads and writes around it."""
    return sum(c.timeout_seconds for c in policy.alerts.channels) + 30


def page(
    store: Store, *, job: str, target: str, policy: Policy, error: str, flow_run_id: str | None
) -> Delivery | None:
    """The database of ``target`` is unreachable: page once per outage (None: already paged).
    Raises one of ``STORE_ERRORS`` only before anything was sent (another store may be tried)."""
    chans = list(policy.alerts.channels)
    if not chans:
        return None
    with store.hold(target, _hold_seconds(policy)):
        state = store.get(job, target)
        if state is not None and state.get("state") == "sent":
            return None
        since = state["since"] if state is not None else clock.now().isoformat()
        store.put(job, target, {"state": "due", "since": since})  # recorded before it is sent
        notice = _notice(
            "page",
            job,
            target,
            policy,
            since=datetime.fromisoformat(since),
            observed=error,
            limit="no infrastructure error",
            summary=f"{job} failed and the database is unreachable: {error}",
            next_command=f"pgtender status  # is the database reachable? then: pgtender run {job}",
            flow_run_id=flow_run_id,
        )
        attempt = channels.deliver(notice, chans, from_address=policy.report.from_address)
        if attempt.accepted:
            with contextlib.suppress(*STORE_ERRORS):  # not marked: the next run sends it once more
                store.put(job, target, {"state": "sent", "since": since})  # marked after
    return Delivery(notice, bool(attempt.accepted), tuple(attempt.accepted))


def resolve(store: Store, *, job: str, target: str, policy: Policy) -> Delivery | None:
    """``target`` answered again: resolve its outage page (None: there was none to resolve)."""
    if not store.recorded(job, target):  # the usual run: nothing recorded (one listing a sweep)
        return None
    with store.hold(target, _hold_seconds(policy)):
        state = store.get(job, target)
        if state is None:
            return None
        if state.get("state") != "sent":  # the page never went out: nobody to tell
            store.delete(job, target)
            return None
        notice = _notice(
            "resolve",
            job,
            target,
            policy,
            since=datetime.fromisoformat(state["since"]),
            summary=f"{job} reached the database again",
        )
        chans = list(policy.alerts.channels)
        attempt = channels.deliver(notice, chans, from_address=policy.report.from_address)
        if attempt.accepted:
            store.delete(job, target)
    return Delivery(notice, bool(attempt.accepted), tuple(attempt.accepted))


def stores(state_dir: Path, *, shared: bool) -> list[Store]:
    """Where to look: the Prefect server when the run is under Prefect (every worker sees it), and the
    local file (the only store without Prefect; read too under Prefect, for an outage paged by a
    plain run on this machine)."""
    local: Store = FileStore(state_dir)
    return [PrefectStore(), local] if shared else [local]
