"""The docs say what is there: the README's migration table is sql/migrations, every file a doc cites
exists, and every `pgtender` command the docs show exists with the options they give it (read from
the typer app itself); the runbook's list of commands that take --target is the app's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "deployments").glob("*.md")],
)
# Files whose comments cite files (deployment descriptions, the Dockerfile, Kubernetes manifests).
COMMENTED = sorted(
    [
        *(ROOT / "deployments").glob("*.yaml"),
        *(ROOT / "deployments" / "k8s").glob("*.yaml"),
        ROOT / "deployments" / "Dockerfile",
    ]
)
# Names the docs use for files of the operator's own, not of this repository.
NOT_OURS = {"pgtender.toml", "/etc/pgtender/pgtender.toml"}

_PATH = re.compile(r"(?<![\w./<>{}$@:-])(\.?[A-Za-z0-9_-]+(?:/[A-Za-z0-9_.*-]+)+/?)")
_BARE = re.compile(r"`([A-Za-z0-9_.-]+\.(?:py|md|sql|yaml|yml|json|toml|sh|txt|j2))`")


def _text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if path in COMMENTED:
        return "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    return text


IGNORED = (".git", ".venv", ".mypy_cache", ".ruff_cache", "__pycache__")
PLACEHOLDER = re.compile(r"NNNN|YYYY|\.\.\.")  # sql/migrations/NNNN_name.up.sql: a pattern, not a file


def _top_level() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.name not in IGNORED}


@cache
def _file_names() -> set[str]:
    """Every file name in the repository (a doc may name a file without its directory)."""
    return {p.name for p in ROOT.rglob("*") if p.is_file() and not any(part in IGNORED for part in p.parts)}


BUILT = ("dist/",)  # what a documented command builds (the wheel), not a file of the repository


def _resolves(token: str, doc: Path) -> bool:
    token = token.rstrip("/.")
    if token.startswith(BUILT):
        return True
    if "/" not in token:
        return token in _file_names()
    for base in (ROOT, doc.parent, ROOT / "flows"):
        if any(True for _ in base.glob(token)) if "*" in token else (base / token).exists():
            return True
    return False


def citations(doc: Path) -> Iterator[str]:
    """Repository paths a doc names: with a directory (``tests/test_x.py``, ``k8s/*.yaml``) or a bare
    file name in backticks (```prefect.yaml```)."""
    text = _text(doc)
    top = _top_level()
    for match in _PATH.finditer(text):
        token = match.group(1).rstrip(".,;:)")
        last = token.rstrip("/").rsplit("/", 1)[-1]
        placeholder = PLACEHOLDER.search(token)
        if placeholder:  # a pattern: its directory must exist
            cut = token.rfind("/", 0, placeholder.start())
            if cut > 0:
                yield token[: cut + 1]
            continue
        if token.split("/", 1)[0] in top or "." in last or token.endswith("/"):
            yield token
    for match in _BARE.finditer(text):
        if not PLACEHOLDER.search(match.group(1)):
            yield match.group(1)


def _cited() -> list[tuple[str, str]]:
    return sorted(
        {(str(doc.relative_to(ROOT)), token) for doc in DOCS + COMMENTED for token in citations(doc)}
    )


@pytest.mark.parametrize(("doc", "token"), _cited())
def test_every_file_a_doc_cites_exists(doc: str, token: str) -> None:
    if token in NOT_OURS:
        return
    assert _resolves(token, ROOT / doc), f"{doc} cites {token}, which is not in the repository"


def test_the_citations_are_found() -> None:
    """The scanner sees what it must (a scanner that finds nothing would pass every doc)."""
    cited = dict.fromkeys(t for _, t in _cited())
    for known in ("docs/runbook.md", "sql/migrations/", "deployments/prefect.yaml", "bench/run.py", "tests/"):
        assert any(t.startswith(known) for t in cited), known


# ---------------------------------------------------------------- the migration table


def test_the_readmes_migration_table_is_sql_migrations() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| (\d{4}) \|", readme, flags=re.MULTILINE)
    ups = sorted(p.name[:4] for p in (ROOT / "sql" / "migrations").glob("*.up.sql"))
    downs = sorted(p.name[:4] for p in (ROOT / "sql" / "migrations").glob("*.down.sql"))
    assert ups == downs
    assert listed == ups


# ---------------------------------------------------------------- commands and options


@cache
def _commands() -> dict[str, Any]:
    """ "run" / "alerts status" / ... -> the click command the typer app builds."""
    import typer.main

    from flows.edge.cli import app

    out: dict[str, Any] = {}

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        else:
            out[" ".join(path)] = cmd

    walk(typer.main.get_command(app), ())
    return out


def _options(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def _code(doc: Path) -> Iterator[str]:
    """What a doc shows as code: fenced blocks' lines and inline code spans."""
    text = doc.read_text(encoding="utf-8")
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        yield from block.splitlines()
    outside = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    yield from (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", outside))  # spans may wrap


def invocations(doc: Path) -> Iterator[tuple[str, list[str]]]:
    """(``pgtender ...`` as written, its words) for every command line a doc shows."""
    for raw in _code(doc):
        code = raw.replace("\\|", " ")  # `--dry-run\|--execute` in a table: either option
        for match in re.finditer(r"(?:^\s*(?:\$\s+)?|&&\s*|;\s*|\$\()pgtender\s+([^#|;&)]*)", code):
            words = match.group(1).split()
            if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):
                yield "pgtender " + match.group(1).strip(), words


def _resolve(words: list[str]) -> tuple[str, list[str]]:
    """The command a line names and the rest of its words."""
    commands = _commands()
    if " ".join(words[:2]) in commands:
        return " ".join(words[:2]), words[2:]
    return words[0], words[1:]


def _shown() -> list[tuple[str, str, list[str]]]:
    return sorted(
        {(str(doc.relative_to(ROOT)), line, tuple(words)) for doc in DOCS for line, words in invocations(doc)}
    )


@pytest.mark.parametrize(("doc", "line", "words"), _shown())
def test_every_command_a_doc_shows_exists_with_its_options(
    doc: str, line: str, words: tuple[str, ...]
) -> None:
    from flows.registry import REGISTRY

    name, rest = _resolve(list(words))
    commands = _commands()
    options = [w.split("=", 1)[0] for w in rest if w.startswith("--") and w != "--help"]
    group = {n: c for n, c in commands.items() if n.startswith(f"{name} ")}
    if name not in commands and group:  # a group (`run`, `alerts`): its help, or `run JOB --target`
        common = set.intersection(*(_options(c) for c in group.values()))
        unknown = [o for o in options if o not in common]
        assert not unknown, f"{doc}: `{line}`: not every `pgtender {name} ...` takes {unknown[0]}"
        return
    assert name in commands, f"{doc}: `{line}`: no command `pgtender {name}`"
    unknown = [o for o in options if o not in _options(commands[name])]
    assert not unknown, f"{doc}: `{line}`: `pgtender {name}` has no option {unknown[0]}"
    if name == "run" and rest and re.fullmatch(r"[a-z]+", rest[0]):  # the job takes the options given
        accepted = [*REGISTRY.get(rest[0]).params.model_fields, "target"]
        taken = [o for o in options if o[2:].replace("-", "_") not in accepted]
        assert not taken, f"{doc}: `{line}`: job {rest[0]} does not take {taken[0]}"


def test_the_commands_are_found() -> None:
    shown = {words[0] for _, _, words in _shown()}
    assert {"run", "backfill", "alerts", "up"} <= shown


def test_the_runbook_names_exactly_the_commands_that_take_target() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    line = next(ln for ln in runbook.splitlines() if ln.startswith("Commands that take `--target NAME`:"))
    named = set(re.findall(r"`pgtender ([a-z -]+?)`", line))
    taking = {name for name, cmd in _commands().items() if "--target" in _options(cmd)}
    jobs = {name for name in taking if name.startswith("run ")}  # `pgtender run`: every job's
    assert jobs == {n for n in _commands() if n.startswith("run ")}
    assert named == (taking - jobs) | {"run"}
    assert "every command above takes" not in " ".join(runbook.lower().split())
