"""``deployments/prefect.yaml`` and ``prefect.image.yaml`` are made from the registry: their
``deployments:`` list (name, entrypoint, tags, schedule, concurrency, pool) is written by

    python -m flows.edge.deploy_files          # rewrite both files' deployments from the registry
    python -m flows.edge.deploy_files --check  # exit 1 when a file differs (tests/test_serving.py)

so a new job needs no hand-written entry. The rest of each file (the header, build/push/pull steps,
definitions) is kept as it is. Schedules are the default policy's: the report's zone and upkeep's
window come from the policy a deployer uses (the entries say so in a comment)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from flows.core.engine import JobSpec, Overlap
from flows.core.policy.settings import Policy
from flows.registry import REGISTRY

FILES = ("prefect.yaml", "prefect.image.yaml")
MARK = "deployments:\n"
NOTES = {
    "report": "set to report.timezone, e.g. Europe/Berlin",
    "upkeep": "set to [upkeep.window] start and timezone",
}
ORDER = ("partitions", "retention", "views", "quality", "health", "capacity", "report", "upkeep", "backfill")


def _entry(spec: JobSpec[Any], policy: Policy) -> str:
    tags = ", ".join(["pgtender", spec.name, *(t for t in spec.tags if t != spec.name)])
    if spec.schedule is None:
        schedules = "schedules: []"
    else:
        s = spec.schedule.in_policy(policy)
        schedules = f'schedules: [{{cron: "{s.cron}", timezone: {s.timezone}}}]'
        if spec.name in NOTES:
            schedules += f"  # {NOTES[spec.name]}"
    limit = "*cancel_new" if spec.overlap is Overlap.CANCEL_NEW else "*one_at_a_time"
    return (
        f"  - name: {spec.name}\n"
        f"    entrypoint: flows.edge.entrypoints.{spec.name}\n"
        f"    tags: [{tags}]\n"
        f"    {schedules}\n"
        f"    concurrency_limit: {limit}\n"
        f"    work_pool: *pool\n"
    )


def deployments_section() -> str:
    """The ``deployments:`` list of every job of the registry (known jobs in their usual order,
    then any new one)."""
    policy = Policy()
    names = [n for n in ORDER if n in REGISTRY.names()] + [n for n in REGISTRY.names() if n not in ORDER]
    return MARK + "".join(_entry(REGISTRY.get(n), policy) for n in names)


def rendered(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    head = text[: text.index(MARK)] if MARK in text else text.rstrip("\n") + "\n\n"
    return head + deployments_section()


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parents[2] / "deployments"
    stale = [name for name in FILES if (here / name).read_text(encoding="utf-8") != rendered(here / name)]
    if "--check" in argv:
        for name in stale:
            print(f"deployments/{name} differs from the registry: python -m flows.edge.deploy_files")  # noqa: T201
        return 1 if stale else 0
    for name in stale:
        (here / name).write_text(rendered(here / name), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
