"""Entrypoints for work-pool deployments (deployments/prefect*.yaml): each job's flow, as
``pgtender serve`` registers it (``flows.edge.serving.served_flow``).

Deployments name them by module path (``flows.edge.entrypoints.health``): the worker imports them
from the installed pgtender (a process worker's virtualenv, the Docker image, the Kubernetes pod),
whatever its working directory, so the deployments need no pull step and carry no path of the
machine they were deployed from."""

from __future__ import annotations

from flows.edge.serving import served_flow

backfill = served_flow("backfill")
capacity = served_flow("capacity")
health = served_flow("health")
partitions = served_flow("partitions")
quality = served_flow("quality")
report = served_flow("report")
retention = served_flow("retention")
views = served_flow("views")
