"""deployments/prefect.image.yaml for an image that is already built (deployments/build-image.sh, or
your own pipeline): the same deployments, without the build and push steps, with ``image`` set.

    python deployments/prebuilt_yaml.py --image registry.example.com/pgtender:0.1.0 \
        --pool pgtender-docker > prefect.prebuilt.yaml
    prefect deploy --all --prefect-file prefect.prebuilt.yaml

Needs PyYAML (Prefect brings it). tests/test_docker_pool.py registers its deployments this way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

IMAGE_YAML = Path(__file__).resolve().parent / "prefect.image.yaml"


class _Plain(yaml.SafeDumper):
    """Every value written out where it is used (no &anchors, as a person would write the file)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def prebuilt(spec: dict[str, Any], image: str, pool: str) -> dict[str, Any]:
    """``spec`` (prefect.image.yaml, loaded) without build/push, every deployment on ``pool`` with
    ``image`` as its job variable."""
    out = {k: v for k, v in spec.items() if k not in ("build", "push", "definitions")}
    deployments = []
    for deployment in spec["deployments"]:
        variables = dict(deployment["work_pool"]["job_variables"])
        if variables.pop("image", None) != "{{ build_image.image }}" or set(variables) - {"env"}:
            raise SystemExit(f"{deployment['name']}: unexpected job variables {variables}")
        work_pool = {**deployment["work_pool"], "name": pool, "job_variables": {**variables, "image": image}}
        deployments.append({**deployment, "work_pool": work_pool})
    out["deployments"] = deployments
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="the image's name:tag")
    parser.add_argument("--pool", required=True, help="the Docker or Kubernetes work pool")
    args = parser.parse_args()
    spec = yaml.safe_load(IMAGE_YAML.read_text("utf-8"))
    yaml.dump(prebuilt(spec, args.image, args.pool), sys.stdout, Dumper=_Plain, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
