"""A lost worker is noticed: flow-run heartbeats and the automation that crashes a run that stops
sending them (Prefect's "detect zombie flows").

When a worker dies with its flow-run process (SIGKILL, a machine lost, a container evicted), nobody
is left to report the run's end: Prefect shows it Running forever, and its deployment's concurrency
slot stays taken until the slot's lease expires (~300 s in Prefect 3.8), so the next run of the job
waits in AwaitingConcurrencySlot. Prefect's answer, which pgtender sets up itself:

- every pgtender flow run emits ``prefect.flow-run.heartbeat`` every ``HEARTBEAT_SECONDS``
  (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, 30: Prefect's minimum). ``pgtender serve``/``up`` start
  their runs with it; the deployments in ``deployments/`` carry it as a job variable (``env``), so
  a process, Docker or Kubernetes worker starts its runs with it whatever its own environment;
- one automation (``AUTOMATION``), a proactive trigger: after a heartbeat of a pgtender run,
  another heartbeat or a final state is expected within ``WITHIN`` (three heartbeats); when none
  comes, the run is set Crashed. That releases its deployment concurrency slot (Prefect releases
  a run's slot when it leaves Running) and the next run starts at once.

The trigger is Prefect's documented one, narrowed to runs tagged ``pgtender`` (every pgtender
deployment carries the tag): a shared Prefect server's other flows, which may heartbeat every
180 s (Prefect's default), are left alone. ``apply`` is idempotent: an identical automation is left
alone, a changed one updated, a missing one created. The run's ledger row becomes ``abandoned`` and
the crash pages once through pgtender's own alerts (the next run of the job, or the health job's
crash watchdog, finds it: ``flows/health/crashes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

HEARTBEAT_SECONDS = 30  # Prefect's minimum; PREFECT_FLOWS_HEARTBEAT_FREQUENCY takes an integer >= 30
WITHIN = timedelta(seconds=3 * HEARTBEAT_SECONDS)  # Prefect's documented window: three missed beats
HEARTBEAT_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
TAG = "pgtender"
NAME = "pgtender: crash flow runs whose heartbeats stopped"
MESSAGE = (
    f"pgtender: no heartbeat from this flow run for {WITHIN.seconds} s: its process or worker died;"
    " marked Crashed (its concurrency slot released)"
)
DESCRIPTION = (
    "Managed by pgtender (pgtender automations apply). A pgtender flow run heartbeats every"
    f" {HEARTBEAT_SECONDS} s; when neither a heartbeat nor a final state follows one within"
    f" {WITHIN.seconds} s, its worker is lost: the run is set Crashed, which frees its deployment"
    " concurrency slot. pgtender's next run of the job marks its ledger row abandoned and pages once."
)


@dataclass(frozen=True)
class Applied:
    name: str
    action: str  # created | updated | unchanged | removed duplicate


def automation() -> AutomationCore:
    """Prefect's zombie-flow automation for pgtender's flow runs."""
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415
    from prefect.events.actions import ChangeFlowRunState  # noqa: PLC0415
    from prefect.events.schemas.automations import (  # noqa: PLC0415
        AutomationCore,
        EventTrigger,
        Posture,
    )
    from prefect.events.schemas.events import ResourceSpecification  # noqa: PLC0415

    trigger = EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={
            "prefect.flow-run.heartbeat",
            "prefect.flow-run.Completed",
            "prefect.flow-run.Failed",
            "prefect.flow-run.Cancelled",
            "prefect.flow-run.Crashed",
        },
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        match_related=ResourceSpecification(
            {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}
        ),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=WITHIN,
    )
    return AutomationCore(
        name=NAME,
        description=DESCRIPTION,
        enabled=True,
        tags=[TAG],
        trigger=trigger,
        actions=[ChangeFlowRunState(name=None, state=StateType.CRASHED, message=MESSAGE, force=False)],
    )


def _shape(found: Any) -> dict[str, Any]:
    """What makes two automations the same (not their ids or timestamps)."""
    shape: dict[str, Any] = found.model_dump(
        include={"name", "description", "enabled", "tags", "trigger", "actions"},
        exclude={"trigger": {"id"}},
    )
    return shape


def apply(client: SyncPrefectClient) -> list[Applied]:
    """Create the automation, update it when it differs, leave it alone when it is the same."""
    wanted = automation()
    found = client.read_automations_by_name(NAME)
    if not found:
        client.create_automation(wanted)
        return [Applied(NAME, "created")]
    keep, *extra = sorted(found, key=lambda a: str(a.id))
    done: list[Applied] = []
    if _shape(keep) == _shape(wanted):
        done.append(Applied(NAME, "unchanged"))
    else:
        client.update_automation(keep.id, wanted)
        done.append(Applied(NAME, "updated"))
    for duplicate in extra:  # two applies at once: one automation is enough
        client.delete_automation(duplicate.id)
        done.append(Applied(NAME, "removed duplicate"))
    return done


def apply_now() -> list[Applied]:
    """``apply`` against the configured Prefect API (PREFECT_API_URL)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        return apply(client)
