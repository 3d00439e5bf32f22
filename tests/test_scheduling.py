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

    async def schedule_and_count() -> tuple[int, int, set[str]]:
        async with get_client() as client:
            response = await client._client.post(
                f"/deployments/{deployment_id}/schedule", json={"max_runs": 5}
            )
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            return response.status_code, len(runs), {r.state_name or "" for r in runs}

    status, count, states = asyncio.run(schedule_and_count())
    assert status in (200, 201)
    assert count >= 1
    assert states == {"Scheduled"}
