"""``pgtender backfill`` at the terminal: through the running server like ``run``, or here with a
progress bar and the days x jobs table; ``--deployment`` triggers the deployment and returns."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from flows.core.engine import Kind, PlainOrchestrator, Verdict, validate, verdicts
from flows.core.errors import ConfigError
from flows.core.policy import settings
from flows.edge import dispatch
from flows.registry import REGISTRY

JOB = "backfill"


class _Bar(PlainOrchestrator):
    """No Prefect; the run's progress on a terminal bar (0..100)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def artifact(self, kind: str, **kwargs: Any) -> Any:
        if kind == "progress":
            self.progress("bar", float(kwargs.get("progress", 0.0)))
            return "bar"
        return None

    def progress(self, artifact_id: Any, value: float) -> None:
        self.bar.update(max(0, int(value) - self.bar.pos))


def values_of(start: str, end: str, jobs: str | None, force: bool, target: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {"start": start, "end": end}
    if jobs is not None:
        values["jobs"] = [j.strip() for j in jobs.split(",") if j.strip()]
    if force:
        values["force"] = True
    if target:
        values["target"] = target
    return values


def table_text(summary: dict[str, Any]) -> str:
    """The days x jobs table of a backfill's result."""
    jobs = summary["jobs"]
    widths = [10, *[max(8, len(j)) for j in jobs]]
    head = "  ".join(h.ljust(w) for h, w in zip(["day", *jobs], widths, strict=True))
    lines = [head]
    for row in summary["table"]:
        lines.append("  ".join(str(row[k]).ljust(w) for k, w in zip(["day", *jobs], widths, strict=True)))
    return "\n".join(lines)


def run(values: dict[str, Any], echo: Callable[[str], None]) -> Verdict:
    """Through the running server (like ``pgtender run``), or here with a progress bar."""
    import typer  # noqa: PLC0415

    if dispatch.find_api(settings.load_settings().state_dir) is not None:
        return dispatch.dispatch(JOB, values)[0]
    label = f"backfill {values['start']}..{values['end']}"
    with typer.progressbar(length=100, label=label, file=sys.stderr) as bar:
        report = dispatch.run_here(JOB, values, _Bar(bar))
        bar.update(max(0, 100 - bar.pos))
    for r in report.results:
        if "table" in r.result:
            if len(report.results) > 1:
                echo(f"== target {r.target}")
            echo(table_text(r.result))
    return report.verdict


def trigger(values: dict[str, Any], *, name: str, watch: bool, echo: Callable[[str], None]) -> Verdict:
    """Trigger the backfill deployment; with ``watch`` follow it to its end."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.deployments import run_deployment  # noqa: PLC0415

    current = settings.load_settings()
    # bad input (start after end, too many days) is refused here: no flow run is created for it
    validate(
        REGISTRY.get(JOB),
        {k: v for k, v in values.items() if k != "target"},
        settings.current_policy(current),
    )
    found = dispatch.find_api(current.state_dir)
    if found is None:
        raise ConfigError("--deployment needs a Prefect API: run pgtender up, or set PREFECT_API_URL")
    dispatch.check_api(found[0])
    with dispatch.using_api(found[0]):
        flow_run: Any = run_deployment(name, parameters=values, timeout=0, as_subflow=False)
        echo(f"triggered {name}: flow run {flow_run.name} ({flow_run.id})")
        if not watch:
            return Verdict(Kind.DONE, f"triggered, not followed: flow run {flow_run.name}")
        with get_client(sync_client=True) as client:
            state = dispatch.follow(client, flow_run.id, 1.0)
    return verdicts.from_state(state)
