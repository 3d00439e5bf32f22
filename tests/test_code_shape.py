"""The size rules of the code (issue 22 item 5): no module under flows/ or checks/ over 400 lines,
no function (or method) over 60 lines, counted from its ``def`` line to its last line."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flows", "checks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Files allowed to break the rules while they are being reworked: none now. Keep it that way: new
# code follows the rules, and a file that breaks them is split, not listed here.
ALLOWED: tuple[str, ...] = ()


def _modules() -> list[str]:
    """Every Python module of the packages, as a path relative to the repository."""
    return sorted(
        p.relative_to(ROOT).as_posix() for package in PACKAGES for p in (ROOT / package).rglob("*.py")
    )


def _allowed(module: str) -> bool:
    return any(fnmatch.fnmatch(module, pattern) for pattern in ALLOWED)


def _offences(path: Path, module: str) -> list[str]:
    """What breaks the rules in one file (``module``: its name in the messages)."""
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{module}: {lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, filename=module)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(
                    f"{module}:{node.lineno} {node.name}: {length} lines (at most {MAX_FUNCTION_LINES})"
                )
    return found


def test_no_module_or_function_is_too_long() -> None:
    modules = _modules()
    assert len(modules) > 100, "the packages' modules were not found"
    offences = [o for m in modules if not _allowed(m) for o in _offences(ROOT / m, m)]
    assert not offences, (
        "split these into well-named helpers or sub-modules (docs/development.md):\n" + "\n".join(offences)
    )


def test_every_allowed_entry_names_a_file() -> None:
    modules = _modules()
    unmatched = [p for p in ALLOWED if not any(fnmatch.fnmatch(m, p) for m in modules)]
    assert not unmatched, f"ALLOWED names no module (remove it): {unmatched}"


def test_the_rules_catch_an_offender(tmp_path: Path) -> None:
    """The counting itself: a 61-line function and a 401-line module are reported, 60 and 400 not."""
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    fine = f"def fine():\n{body}\n"  # 60 lines
    long = f"def long():\n{body}\n    return 0\n"  # 61 lines
    text = fine + long + "\n" * (MAX_MODULE_LINES - len((fine + long).splitlines()) + 1)
    module = tmp_path / "shape_probe.py"
    module.write_text(text, encoding="utf-8")
    assert _offences(module, "probe.py") == [
        f"probe.py: {MAX_MODULE_LINES + 1} lines (at most {MAX_MODULE_LINES})",
        f"probe.py:61 long: 61 lines (at most {MAX_FUNCTION_LINES})",
    ]
    module.write_text(fine + "\n" * (MAX_MODULE_LINES - 60), encoding="utf-8")
    assert _offences(module, "probe.py") == []
