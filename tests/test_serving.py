"""Deployments (schedules, tags, concurrency, parameter forms) and the late-run rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from flows.core.policy import settings
from flows.edge import serving
from flows.registry import REGISTRY

JOBS = REGISTRY.names()


def _crons() -> dict[str, str]:
    return {job: s.cron for job, s in REGISTRY.schedules(settings.current_policy()).items()}


@pytest.fixture
def berlin_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pgtender.toml"
    path.write_text('[report]\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    monkeypatch.setenv("PGTENDER_CONFIG", str(path))


def _by_name() -> dict[str, Any]:
    return {d.name: d for d in serving.deployments()}


@pytest.mark.usefixtures("berlin_policy")
def test_one_deployment_per_job_with_schedule_tags_and_concurrency() -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    deps = _by_name()
    assert sorted(deps) == sorted(JOBS)
    for job, dep in deps.items():
        assert dep.flow_name == job
        assert {"pgtender", job} <= set(dep.tags)
        assert dep.concurrency_limit == 1, job
        expected = (
            ConcurrencyLimitStrategy.CANCEL_NEW
            if job in {"views", "health"}
            else ConcurrencyLimitStrategy.ENQUEUE
        )
        assert dep.concurrency_options.collision_strategy == expected, job
        assert dep.description, job
        if job not in _crons():
            assert not dep.schedules, f"{job} is on demand"
            continue
        (schedule,) = dep.schedules
        assert schedule.schedule.cron == _crons()[job]
        assert schedule.schedule.timezone == ("Europe/Berlin" if job == "report" else "UTC"), job
    assert deps["report"].schedules[0].schedule.cron == "0 8 * * 1"
    assert deps["partitions"].schedules[0].schedule.cron == "5 0 * * *"
    assert {"maintenance"} <= set(deps["retention"].tags)


def test_parameter_schema_is_a_form_with_descriptions() -> None:
    deps = _by_name()
    quality = deps["quality"]._parameter_openapi_schema
    assert quality.title == "Parameters" and quality.type == "object"
    assert set(quality.properties) == {"day", "suite", "target"}
    day = quality.properties["day"]
    assert "YYYY-MM-DD" in day["description"] and day["default"] is None
    assert quality.properties["day"]["position"] == 0 and quality.properties["suite"]["position"] == 1
    report = deps["report"]._parameter_openapi_schema
    assert [report.properties[k]["position"] for k in ("week", "to", "dry_run")] == [0, 1, 2]
    assert "ISO week" in report.properties["week"]["description"]
    dry = deps["partitions"]._parameter_openapi_schema.properties["dry_run"]
    assert dry["type"] == "boolean" and dry["default"] is False and dry["description"]
    # every job takes the target (a [targets] name; empty: every target of the fleet)
    for job, dep in deps.items():
        target = dep._parameter_openapi_schema.properties["target"]
        assert target["default"] is None and "every target" in target["description"], job
    assert set(deps["health"]._parameter_openapi_schema.properties) == {"target"}
    # every property of every form has a description (the UI shows it under the field)
    for job, dep in deps.items():
        for name, prop in dep._parameter_openapi_schema.properties.items():
            assert prop.get("description"), f"{job}.{name}"
    # the types and constraints come from the flow signatures: the server refuses what breaks them
    backfill = deps["backfill"]._parameter_openapi_schema
    assert backfill.required == ["start", "end"]
    assert backfill.properties["start"]["format"] == "date" == backfill.properties["end"]["format"]
    (listed,) = [a for a in backfill.properties["jobs"]["anyOf"] if a.get("type") == "array"]
    assert sorted(listed["items"]["enum"]) == ["capacity", "partitions", "quality", "views"]
    (week,) = [a for a in report.properties["week"]["anyOf"] if a.get("type") == "string"]
    assert week["pattern"] == r"^\d{4}-W\d{2}$"
    assert quality.properties["day"]["anyOf"][0]["format"] == "date"


def test_retries_on_the_served_flows() -> None:
    assert serving.served_flow("partitions").retries == 0
    assert serving.served_flow("partitions").name == "partitions"
    assert serving.served_flow("report").retries == 0
    # a failed check is a finding, not a glitch: re-running the flow would find it again
    assert not serving.served_flow("quality").retries and not serving.served_flow("health").retries


def _downtime(client: Any, deployment_id: Any, now: datetime, every: timedelta, hours: int) -> None:
    """What the scheduler leaves behind when nobody ran the deployment for ``hours``."""
    from prefect.states import Scheduled

    at = now - timedelta(hours=hours)
    while at < now - timedelta(minutes=3):
        client.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=at))
        at += every


def _scheduled_runs(client: Any, deployment_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    return list(
        client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            ),
            limit=200,
        )
    )


@pytest.mark.usefixtures("prefect_api")
def test_late_runs_collapse_to_one_catch_up_run_per_job() -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    deps = _by_name()
    ids = {job: deps[job].apply() for job in ("health", "views")}
    # Prefect's clock (its test server runs on the real one, also in a calendar session)
    now = datetime.now(UTC).replace(microsecond=0)
    with get_client(sync_client=True) as client:
        # two hours of downtime: 24 health runs and 8 views runs are overdue
        _downtime(client, ids["health"], now, timedelta(minutes=5), 2)
        _downtime(client, ids["views"], now, timedelta(minutes=15), 2)
        # a run someone started by hand with its own parameters keeps its place
        manual = client.create_flow_run_from_deployment(
            ids["views"],
            parameters={"dry_run": True},
            state=Scheduled(scheduled_time=now - timedelta(hours=1)),
        )
        # a run that is not yet overdue (within the grace) is not a catch-up run: untouched
        client.create_flow_run_from_deployment(ids["health"], state=Scheduled(scheduled_time=now))

        # Prefect's scheduler may add the deployments' next runs at any moment: those lie in the
        # future, are none of this test's runs and are not what the rule is about.
        def planted(job: str) -> list[Any]:
            return [r for r in _scheduled_runs(client, ids[job]) if r.expected_start_time <= now]

        before = {job: planted(job) for job in ids}
        assert len(before["health"]) == 25 and len(before["views"]) == 9
        newest = max(
            (r for r in before["health"] if r.expected_start_time < now - serving.LATE_GRACE),
            key=lambda r: r.expected_start_time,
        )

        with capture_logs() as logs:
            cancelled = serving.collapse_late_runs(client, ids, now=now)

        assert cancelled == {"health": 23, "views": 7}
        health_left = planted("health")
        assert len(health_left) == 2 and newest.id in {r.id for r in health_left}
        views_left = planted("views")
        assert len(views_left) == 2 and manual.id in {r.id for r in views_left}
        gone = next(r for r in before["health"] if r.id not in {x.id for x in health_left})
        state = client.read_flow_run(gone.id).state
        assert state is not None and state.is_cancelled()  # still visible in the UI, with the reason
        assert "late-run rule" in (state.message or "")
        # idempotent: a second pass finds nothing to do
        assert serving.collapse_late_runs(client, ids, now=now) == {}
    why = [e for e in logs if e["event"].startswith("late runs collapsed")]
    assert {e["job"] for e in why} == {"health", "views"}
    assert "at most one catch-up run per job" in why[0]["event"]


def test_the_deployment_files_are_made_from_the_registry() -> None:
    """Both prefect*.yaml files' deployments are the registry's, as `python -m flows.edge.deploy_files`
    writes them: a new job needs no hand-written entry."""
    from flows.edge import deploy_files

    assert deploy_files.main(["--check"]) == 0


def test_prefect_yaml_mirrors_the_served_deployments() -> None:
    import yaml  # type: ignore[import-untyped]

    spec = yaml.safe_load((Path(__file__).parents[1] / "deployments" / "prefect.yaml").read_text("utf-8"))
    listed = {d["name"]: d for d in spec["deployments"]}
    assert sorted(listed) == sorted(JOBS)
    from flows.edge import entrypoints

    # no pull step: a worker imports the flows from the installed package, wherever it runs
    assert spec["pull"] == []
    for job, d in listed.items():
        module, _, attr = d["entrypoint"].rpartition(".")
        assert module == "flows.edge.entrypoints"
        assert getattr(entrypoints, attr).name == job
        assert set(d["tags"]) == set(serving.tags(job)), job
        crons = [s["cron"] for s in d["schedules"]]
        assert crons == ([_crons()[job]] if job in _crons() else []), job
        strategy = d["concurrency_limit"]["collision_strategy"]
        assert d["concurrency_limit"]["limit"] == 1
        assert strategy == REGISTRY.get(job).overlap.value, job
        assert getattr(entrypoints, attr).retries == 0, job


@pytest.mark.usefixtures("prefect_api")
def test_prefect_deploy_and_serve_expose_the_same_forms(tmp_path: Path) -> None:
    """`prefect deploy` (deployments/prefect.yaml, work pools) builds each form from the flow the
    way `pgtender serve` does: the same parameter schema, with types, constraints and descriptions."""
    import contextlib
    import os
    import subprocess
    import sys

    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="pgtender", type="process"))
    root = Path(__file__).parents[1]
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            "deployments/prefect.yaml",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    served = _by_name()
    with get_client(sync_client=True) as client:
        for job in sorted(JOBS):
            deployed = client.read_deployment_by_name(f"{job}/{job}")
            assert deployed.work_pool_name == "pgtender", job
            expected = served[job]._parameter_openapi_schema.model_dump()
            for key in ("definitions", "required"):  # the server drops them when empty
                if not expected.get(key):
                    expected.pop(key, None)
            assert deployed.parameter_openapi_schema == expected, job
