"""Issue 26.5: files an operator hands pgtender are read with bounds — the policy file and dump
manifests: at most 1 MB, at most 32 levels of nesting; beyond that one line, exit 2, nothing read
further and nothing changed."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from flows.core import operator_files
from flows.core.errors import ConfigError
from flows.core.policy import settings
from tests.conftest import Database, human_lines

ROOT = Path(__file__).parents[1]
MEMORY_CAP = 2 << 30  # the child may not take more than 2 GB: reading /dev/zero to the end would


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _pgtender(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PGTENDER_CONFIG",)}
    return subprocess.run(
        [sys.executable, "-m", "flows.edge.cli", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_cap_memory,  # the cap holds in the child only
        check=False,
    )


def test_policy_file_dev_zero_is_refused_in_one_line(migrated_db: Database) -> None:
    """Before: read until the kernel killed the process (23.7 GB)."""
    done = _pgtender(["status"], PGTENDER_CONFIG="/dev/zero", PGTENDER_DATABASE_URL=migrated_db.dsn)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = human_lines(done.stderr)
    assert line == "pgtender: config file /dev/zero is larger than 1 MB: refused (is it the right file?)"
    assert "Traceback" not in done.stderr


def test_deeply_nested_policy_file_is_refused_in_one_line(migrated_db: Database, tmp_path: Path) -> None:
    """Before: a 10 KB file of nested arrays was a RecursionError and a 2,994-line traceback."""
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    done = _pgtender(
        ["run", "views", "--dry-run"], PGTENDER_CONFIG=str(deep), PGTENDER_DATABASE_URL=migrated_db.dsn
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = human_lines(done.stderr)
    assert "nests 5000 levels of arrays or tables: at most 32 are read" in line
    assert "Traceback" not in done.stderr
    assert not migrated_db.scalar("SELECT count(*) FROM pgtender_operations")  # nothing ran


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("# " + "x" * (1 << 20) + "\n", "is larger than 1 MB"),  # a big file of valid TOML
        ("[views]\nx = " + "[" * 33 + "]" * 33 + "\n", "nests 33 levels"),
        ("[views]\nx = " + "{ a = " * 40 + "1" + " }" * 40 + "\n", "nests 40 levels"),
        ("[views]\nbad = \xff\n", "cannot be read"),
    ],
)
def test_policy_files_beyond_the_bounds(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "pgtender.toml"
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    with pytest.raises(ConfigError) as refused:
        settings.load_policy(path)
    message = str(refused.value)
    assert said in message or ("not UTF-8" in message and said == "cannot be read"), message


def test_brackets_in_strings_and_comments_are_not_nesting(tmp_path: Path) -> None:
    """A file within the bounds reads as before, whatever its strings and comments hold."""
    path = tmp_path / "pgtender.toml"
    path.write_text(
        "# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ a comment\n"
        "[views]\n"
        'schema_name = "public"  # ]]]]]]\n'
        'note = "x[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\" [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["\n'
        "literal = 'y{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{'\n"
        'multi = """\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"""\n'
        "[[alerts.channels]]\n"
        "name = 'x'\n",
        encoding="utf-8",
    )
    raw = operator_files.read_toml(path, what="config file")
    assert raw["views"]["note"].startswith("x[[[") and raw["views"]["literal"].startswith("y{{{")
    assert operator_files.nesting(path.read_text(), operator_files._TOML_OPAQUE) == 2
    (tmp_path / "ok.toml").write_text('[views]\nschema_name = "public"  # ]]]]]]\n', encoding="utf-8")
    assert settings.load_policy(tmp_path / "ok.toml").views.schema_name == "public"


def test_restore_manifests_are_read_with_bounds(tmp_path: Path) -> None:
    """A manifest handed to the restore path: too big, too deep or not a manifest is one line."""
    from flows.retention.archive import verify_dump

    big = tmp_path / "big.json"
    big.write_text(json.dumps({"file": "x", "sha256": "0", "rows": 1, "pad": "x" * (1 << 20)}))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    other = tmp_path / "other.json"
    other.write_text('{"hello": "world"}')
    for path, said in (
        (big, "is larger than 1 MB"),
        (deep, "nests 100000 levels"),
        (other, "is not a pgtender manifest"),
    ):
        with pytest.raises(ConfigError) as refused:
            verify_dump(path)
        assert said in str(refused.value) and "\n" not in str(refused.value)
