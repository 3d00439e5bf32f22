"""Installing pgtender on a worker as deployments/README.md says: the wheel built from the checkout
(`pip wheel --no-deps`), installed with the pinned dependencies into a fresh virtualenv (offline,
from the wheelhouse `deployments/build-image.sh wheelhouse` makes), then `pgtender --help` and the
flows the deployments name, imported from the installed package (not the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[:4]}: {done.stdout[-1500:]}{done.stderr[-2500:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_wheel_installs_into_a_fresh_virtualenv_and_runs(tmp_path: Path) -> None:
    wheelhouse = _run(
        [str(ROOT / "deployments" / "build-image.sh"), "wheelhouse"],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=900,
    ).strip()
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheelhouse}
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(ROOT)],
        cwd=tmp_path,
        env={**offline, "PIP_CONSTRAINT": str(ROOT / "deployments" / "build-constraints.txt")},
    )
    (wheel,) = dist.glob("pgtender-*-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("flows/sql/migrations/") and n.endswith(".up.sql") for n in names)
    assert any(n.startswith("flows/sql/queries/") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)

    venv = tmp_path / "worker-venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    _run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", "-c", str(ROOT / "deployments" / "constraints.txt"),
         str(wheel)],
        cwd=tmp_path,
        env=offline,
        timeout=900,
    )  # fmt: skip
    assert "Usage: pgtender" in _run([str(venv / "bin" / "pgtender"), "--help"], cwd=tmp_path)
    # every flow the deployments name, imported as a worker imports it (module path, attribute)
    entrypoints = [
        d["entrypoint"]
        for d in yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text("utf-8"))["deployments"]
    ]
    probe = (
        "import importlib, importlib.resources, sys, flows\n"
        "print(flows.__file__)\n"
        "for path in sys.argv[1:]:\n"
        "    module, _, name = path.rpartition('.')\n"
        "    print(getattr(importlib.import_module(module), name).name)\n"
        "print(len(list((importlib.resources.files('flows') / 'sql' / 'migrations').iterdir())))\n"
    )
    where, *flows, migrations = _run(
        [str(venv / "bin" / "python"), "-c", probe, *entrypoints], cwd=tmp_path
    ).splitlines()
    assert where.startswith(str(venv)), where  # the installed package, not the checkout
    assert flows == [e.rpartition(".")[2] for e in entrypoints] and len(flows) >= 8, flows
    assert int(migrations) >= 2
