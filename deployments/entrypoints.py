"""Entrypoints for work-pool deployments (prefect.yaml): each job's flow with its flow-level retries.

A worker imports the entrypoint named in prefect.yaml and runs that object, so the retries of
``flows.edge.serving.RETRIES`` must live on it (``pgtender serve`` registers the same objects in-process).
"""

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
