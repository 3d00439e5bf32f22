"""deployments/README.md's worker environment, checked against the policy it documents
(deployments/k8s/policy-configmap.yaml): every variable and block the policy names is in the tables
and nothing else is; the Kubernetes Secret example and job template carry every variable; the
documented command that creates a target's Secret block works and the target then resolves."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.core.fleet import targets
from flows.core.policy import settings
from tests.worker_env import worker_needs

ROOT = Path(__file__).parents[1]
README = ROOT / "deployments" / "README.md"
K8S = ROOT / "deployments" / "k8s"


def _example_policy(tmp_path: Path) -> Path:
    (doc,) = yaml.safe_load_all((K8S / "policy-configmap.yaml").read_text("utf-8"))
    path = tmp_path / "pgtender.toml"
    path.write_text(doc["data"]["pgtender.toml"], "utf-8")
    return path


def _table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``heading`` in deployments/README.md."""
    lines = README.read_text("utf-8").splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table under {heading!r}"
    return rows[2:]  # past the header and its rule


def _name(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"{cell!r}: the first column names one variable or block, in backticks"
    return match.group(1)


def test_the_worker_environment_table_is_the_policys(tmp_path: Path) -> None:
    needs = worker_needs(settings.load_policy(_example_policy(tmp_path)))
    rows = _table("### The worker environment")
    documented = {_name(row[0]): row[2] == "yes" for row in rows}
    assert len(documented) == len(rows), "a variable is listed twice"
    assert documented == needs.variables
    assert all(len(row) == 6 and all(row) for row in rows), "every row says where each pool gets it"


def test_the_blocks_table_is_the_policys(tmp_path: Path) -> None:
    needs = worker_needs(settings.load_policy(_example_policy(tmp_path)))
    documented = {_name(row[0]): row[1] for row in _table("### Prefect blocks the runs read")}
    assert documented == needs.blocks


def test_kubernetes_secret_and_job_template_carry_every_variable(tmp_path: Path) -> None:
    needs = worker_needs(settings.load_policy(_example_policy(tmp_path)))
    (secret,) = yaml.safe_load_all((K8S / "targets-secret.example.yaml").read_text("utf-8"))
    overlay = json.loads((K8S / "job-overlay.json").read_text("utf-8"))
    template_env = overlay["variables"]["properties"]["env"]["default"]
    in_secret = set(secret["stringData"])
    assert in_secret | set(template_env) == set(needs.variables)
    assert not in_secret & set(template_env), "set in two places"
    assert {name for name, secret_value in needs.variables.items() if secret_value} <= in_secret
    assert {"PREFECT_API_URL", "PGTENDER_CONFIG", "PGTENDER_STATE_DIR"} <= set(template_env)
    # the merged template the Helm chart gets is the overlay's (.ci/fleet also renders it)
    merged = json.loads((K8S / "base-job-template.json").read_text("utf-8"))
    assert merged["variables"]["properties"]["env"]["default"] == template_env


def _secret_block_command() -> str:
    text = README.read_text("utf-8")
    section = text[text.index("### Prefect blocks the runs read") : text.index("### Installing pgtender")]
    (line,) = [ln for ln in section.splitlines() if ln.startswith("python -c ")]
    return line


@pytest.mark.usefixtures("prefect_api")
def test_the_documented_secret_block_command_makes_url_secret_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL

    command = _secret_block_command()
    url = "postgresql://pgtender_maintainer:s3cret@us-db.internal:5432/analytics"
    inline = command.removeprefix("python -c ").strip("'")
    done = subprocess.run(
        [sys.executable, "-c", inline],
        env={**os.environ, "URL": url, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert url not in done.stdout + done.stderr
    monkeypatch.setenv("PGTENDER_CONFIG", str(_example_policy(tmp_path)))
    monkeypatch.setenv("PGTENDER_EU_URL", "postgresql://pgtender_maintainer:x@eu-db.internal:5432/analytics")
    monkeypatch.delenv("PGTENDER_DATABASE_URL", raising=False)
    settings._policy_cached.cache_clear()
    try:
        current = settings.load_settings()
        resolved = {
            t.name: (t.source, t.dsn) for t in targets.resolve_all(current, settings.current_policy(current))
        }
    finally:
        settings._policy_cached.cache_clear()
    assert resolved["us"] == ("secret:pgtender-us-url", url)
    assert resolved["eu"][0] == "env:PGTENDER_EU_URL"
