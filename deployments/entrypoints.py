"""Entrypoints for work-pool deployments (prefect.yaml): each job's flow, as ``pgtender serve``
registers it (``flows.edge.serving.served_flow``)."""

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
