"""The README's performance table quotes the latest results file of ``bench/run.py``: every ratio
(``0.61`` followed by the multiplication sign) and percentage in the table appears in that file, and the file the README names is the
latest. No benchmark runs here; a later run that misses a target shows up as a changed figure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NUMBER = r"\d+(?:\.\d+)?"
TIMES, EN_DASH = "\u00d7", "\u2013"
# "0.61x", "1.05-1.36x", "7-11 %" as the README writes them (multiplication sign, en dash)
FIGURE = re.compile(rf"({NUMBER})(?:\s*[{EN_DASH}-]\s*({NUMBER}))?\s*({TIMES}|%)")


def performance_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Performance")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def table_rows(section: str) -> list[str]:
    return [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]


def latest_results() -> Path:
    files = sorted(RESULTS.glob("*.json"), key=lambda p: json.loads(p.read_text())["date"])
    assert files, "bench/results/ holds no results file: run python bench/run.py"
    return files[-1]


def numbers_in(value: Any) -> set[str]:
    """Every number in a value, as text: floats as stored and to 2 places (how ratios print)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for v in value.values():
            found |= numbers_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= numbers_in(v)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        found.add(str(value))
    elif isinstance(value, float):
        found |= {f"{value:.2f}", str(value)}
    elif isinstance(value, str):
        found |= set(re.findall(NUMBER, value))
    return found


def ratios_in(value: Any, *, inside: bool = False) -> set[str]:
    """The numbers a ratio may be quoted from: values under a key naming a ratio (``ratios``,
    ``p95_ratio`` ...), and the printed output of the benches that run as subprocesses."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, v in value.items():
            found |= ratios_in(v, inside=inside or "ratio" in key or key == "output")
    elif isinstance(value, list):
        for v in value:
            found |= ratios_in(v, inside=inside)
    elif inside:
        found |= numbers_in(value)
    return found


def bench_of(row: str, previous: str | None) -> str | None:
    """The bench a table row quotes: ``bench/<name>.py`` in its first column; a ditto row (〃)
    quotes the row above's."""
    first = row.strip().strip("|").split("|")[0]
    named = re.search(r"bench/(\w+)\.py", first)
    return named.group(1) if named else previous


def test_readme_names_the_latest_results_file() -> None:
    section = performance_section()
    latest = latest_results()
    named = set(re.findall(r"bench/results/([\w.:-]+\.json)", section))
    assert named == {latest.name}, f"README quotes {sorted(named)}, the latest results file is {latest.name}"


def test_every_ratio_in_the_performance_table_is_in_the_latest_results() -> None:
    """Each row's figures must be in the results of the bench that row names (not merely anywhere)."""
    latest = latest_results()
    benches = json.loads(latest.read_text())["benches"]
    rows = table_rows(performance_section())
    assert len(rows) > 2, "no performance table in the README"
    missing: list[str] = []
    checked = 0
    bench: str | None = None
    for row in rows[1:]:  # the header row has no figures
        bench = bench_of(row, bench)
        assert bench in benches, f"{latest.name} has no {bench!r} bench for: {row[:80]}"
        known = ratios_in(benches[bench])
        measured = "|".join(row.strip().strip("|").split("|")[:-1])  # the last column is the target
        for match in FIGURE.finditer(measured):
            for number in filter(None, match.group(1, 2)):
                checked += 1
                if number not in known:
                    missing.append(f"{number}{match.group(3)} ({bench}) in: {row[:80]}")
    assert checked >= 5, "the performance table quotes no ratios"
    assert not missing, f"figures not in {latest.name}:\n" + "\n".join(missing)


def test_results_file_records_the_machine_and_the_commit() -> None:
    result = json.loads(latest_results().read_text())
    assert re.fullmatch(r"[0-9a-f]{7,40}", result["commit"])
    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["memory_gb"] > 0
    assert "PostgreSQL" in machine["postgresql"] and machine["commit_latency"]["median_ms"] > 0
    core = result["benches"]["partitions"]["figures"]["core"]
    sides = core["trials_s"]
    assert len({len(v) for v in sides.values()}) == 1  # every side ran every trial
    assert core["partitions_per_side"] == core["tables"] * core["months"]  # equal work, checked
