"""Prefect's scheduler must be able to create runs for our deployments.

Prefect 3.8.8 with SQLAlchemy 2.1 fails in the server's bulk insert of scheduled runs, so schedules
shown in the UI would never fire; pyproject pins SQLAlchemy below 2.1. This test is the guard.
"""

from __future__ import annotations

import asyncio

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from flows.edge.serving import deployments


@pytest.mark.usefixtures("prefect_api")
def test_scheduler_creates_runs_for_a_served_deployment() -> None:
    health = next(d for d in deployments() if d.name == "health")
    deployment_id = health.apply()

    async def scheduled_runs() -> int:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            return sum(r.state_name == "Scheduled" for r in runs)

    async def schedule() -> int:
        async with get_client() as client:
            response = await client._client.post(
                f"/deployments/{deployment_id}/schedule", json={"max_runs": 5}
            )
            return response.status_code

    async def remove() -> None:
        """The session's server is shared: runs scheduled here must not wait for a later test's
        workers (they would take the deployment's concurrency slot from that test's own run)."""
        async with get_client() as client:
            await client.delete_deployment(deployment_id)
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            for run in runs:
                await client.delete_flow_run(run.id)

    # the deployment may also hold runs of other tests (the server is the session's): only its
    # Scheduled runs are the scheduler's
    try:
        assert asyncio.run(schedule()) in (200, 201)
        assert asyncio.run(scheduled_runs()) >= 1
    finally:
        asyncio.run(remove())
