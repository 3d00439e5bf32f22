"""``pgtender run JOB [options]``: one subcommand per job of the registry, its options made from the
job's parameters (``pgtender run quality --help`` lists quality's), ``--target`` on every one."""

from __future__ import annotations

import inspect
import typing
from datetime import date
from typing import Annotated, Any

import typer

from flows.core.engine import JobSpec, Verdict, verdicts
from flows.core.errors import PgtenderError
from flows.registry import REGISTRY

run_app = typer.Typer(
    help=(
        "Run one job now: a run of its deployment on the running server (pgtender up), followed to its"
        " end; with no server running, the job here without Prefect. Prints the outcome once; exit 0 done"
        " or skipped, 1 problems found, 2 bad input, 3 infrastructure error."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

TARGET_HELP = "One database of the fleet (default: every target)."


def _option(name: str, field: Any) -> inspect.Parameter:
    flag = f"--{name.replace('_', '-')}"
    help_text = " ".join((field.description or "").split())
    if field.annotation is bool:
        annotation: Any = Annotated[bool, typer.Option(flag, help=help_text)]
        default: Any = bool(field.default)
    else:
        kind = "YYYY-MM-DD" if date in typing.get_args(field.annotation) else None
        annotation = Annotated[str | None, typer.Option(flag, help=help_text, metavar=kind)]
        default = None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _values(spec: JobSpec[Any], given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in given.items():
        if value is None or value is False:
            continue
        field = spec.params.model_fields.get(name)
        listed = field is not None and list in (
            typing.get_origin(a) for a in typing.get_args(field.annotation)
        )
        values[name] = [v.strip() for v in str(value).split(",") if v.strip()] if listed else value
    return values


def run_job(job: str, values: dict[str, Any]) -> Verdict:
    """The job through the server or here; bad input before anything ran is a verdict too."""
    from flows.edge.dispatch import dispatch  # noqa: PLC0415

    try:
        return dispatch(job, values)[0]
    except PgtenderError as exc:
        return verdicts.of_error(exc)


def _command(spec: JobSpec[Any]) -> Any:
    def command(**given: Any) -> None:
        verdict = run_job(spec.name, _values(spec, given))
        typer.echo(verdict.text(spec.name), err=verdict.exit_code != 0)
        raise typer.Exit(verdict.exit_code)

    params = [_option(name, field) for name, field in spec.params.model_fields.items()]
    params.append(
        inspect.Parameter(
            "target",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[str | None, typer.Option("--target", help=TARGET_HELP)],
        )
    )
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = spec.name
    command.__doc__ = spec.description
    return command


for _spec in REGISTRY.specs():
    if _spec.name != "backfill":  # `pgtender backfill` has its own command (progress bar, table)
        run_app.command(_spec.name)(_command(_spec))
