"""Entrypoints for work-pool deployments (deployments/prefect*.yaml): ``flows.edge.entrypoints.<job>``
is the flow of every job of the registry, as ``pgtender serve`` registers it.

Deployments name them by module path: the worker imports them from the installed pgtender (a
process worker's virtualenv, the Docker image, the Kubernetes pod), whatever its working directory,
so the deployments need no pull step and carry no path of the machine they were deployed from. A new
job needs nothing here: its name resolves through the registry."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from flows.edge.flows import flow_for  # noqa: PLC0415
    from flows.registry import REGISTRY  # noqa: PLC0415

    if name.startswith("__") or name not in REGISTRY.names():
        raise AttributeError(name)
    return flow_for(REGISTRY.get(name))


def __dir__() -> list[str]:
    from flows.registry import REGISTRY  # noqa: PLC0415

    return REGISTRY.names()
