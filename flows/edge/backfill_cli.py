"""``pgtender backfill`` at the terminal: a progress bar and the days x jobs table, run here or
through the ``backfill`` deployment."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flows.backfill import JOB, ItemResult, Request, finished_since, progress_listener, rejected, validate
from flows.core import clock, lifecycle, runtime, settings, targets
from flows.core.errors import ConfigError, InfrastructureError, ProblemsFound

DEPLOYMENT = "backfill/backfill"


def _policy_and_request(
    start: str, end: str, jobs: str | None, force: bool, target: str | None = None
) -> Request:
    policy = settings.current_policy()
    try:
        return validate(start, end, jobs, force=force, policy=policy.backfill)
    except ConfigError as exc:
        _record_rejection(rejected.as_given(start, end, jobs, force, source="cli"), exc, target)
        raise


def _record_rejection(given: dict[str, Any], exc: ConfigError, target: str | None) -> None:
    """The refused request in the ledger of each target it named (the report counts it); a target
    that cannot be reached or named keeps nothing: the rejection stays one line, exit 2."""
    try:
        chosen = targets.select(target)
    except ConfigError:
        return
    for one in chosen:
        try:
            with targets.using(one), runtime.connection() as conn:
                rejected.record(conn, given, exc, flow_run_id=None)
        except (InfrastructureError, *rejected.NOT_RECORDED):
            continue


def cli_local(
    start: str,
    end: str,
    jobs: str | None,
    force: bool,
    *,
    echo: Callable[[str], None],
    target: str | None = None,
) -> dict[str, Any] | None:
    """Validate; then a run of the backfill deployment on the running server (its logs streamed
    here), or, with none running, the backfill here without Prefect with a progress bar."""
    import typer  # noqa: PLC0415

    from flows.edge import dispatch  # noqa: PLC0415

    request = _policy_and_request(start, end, jobs, force, target)  # ConfigError before anything runs
    params: dict[str, Any] = {"start": start, "end": end, "jobs": list(request.jobs), "force": force}
    if target:
        params["target"] = target

    def err(line: str) -> None:
        typer.echo(line, err=True)

    if dispatch.find_api(settings.load_settings().state_dir) is not None:
        dispatch.dispatch(JOB, params, echo, err=err)
        return None
    total = len(request.items())
    bar_label = f"backfill {request.start}..{request.end}"
    reason = "no pgtender server is running"
    with typer.progressbar(length=total, label=bar_label, file=sys.stderr) as bar:

        def advance(result: ItemResult, finished: int, _total: int) -> None:
            bar.label = f"{result.job} {result.day}: {result.outcome}"
            bar.update(max(0, finished - bar.pos))

        with progress_listener(advance):
            try:
                summary: dict[str, Any] = dispatch.run_plain(JOB, params, err, reason=reason)
            except ProblemsFound:  # the table still shows which days found what (exit 1 follows)
                found = lifecycle.last_outcome(JOB)
                if found is not None and found.result.get("table"):
                    bar.update(max(0, total - bar.pos))
                    echo(table_text(found.result))
                raise
            finally:
                bar.update(max(0, total - bar.pos))
    if "targets" in summary:  # a sweep over the fleet: one table per target
        for name, entry in summary["targets"].items():
            echo(f"== target {name}: {entry['outcome']}")
            if isinstance(entry.get("result"), dict) and "table" in entry["result"]:
                echo(table_text(entry["result"]))
            elif entry["message"]:
                echo(entry["message"])
        return summary
    echo(table_text(summary))
    return summary


def table_text(summary: dict[str, Any]) -> str:
    jobs = summary["jobs"]
    widths = [10, *[max(8, len(j)) for j in jobs]]
    head = "  ".join(h.ljust(w) for h, w in zip(["day", *jobs], widths, strict=True))
    lines = [head]
    for row in summary["table"]:
        lines.append("  ".join(str(row[k]).ljust(w) for k, w in zip(["day", *jobs], widths, strict=True)))
    by = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
    earlier = summary.get("already_done", 0)
    lines.append(
        f"{summary['items']} items: {by}" + (f" ({earlier} recorded earlier, not re-run)" if earlier else "")
    )
    return "\n".join(lines)


def cli_deployment(
    start: str,
    end: str,
    jobs: str | None,
    force: bool,
    *,
    watch: bool,
    name: str,
    echo: Callable[[str], None],
    poll_seconds: float = 1.0,
    target: str | None = None,
) -> str:
    """Trigger the ``backfill`` deployment; with ``watch`` follow it (progress from the ledger)."""
    import typer  # noqa: PLC0415
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.objects import FlowRun  # noqa: PLC0415
    from prefect.deployments import run_deployment  # noqa: PLC0415

    request = _policy_and_request(start, end, jobs, force, target)
    params: dict[str, Any] = {"start": start, "end": end, "jobs": list(request.jobs), "force": force}
    # progress is read from the ledger of the target named, or of the fleet's first target
    watched = targets.select(target)[0]
    if target is not None:
        params["target"] = target
    with (
        targets.using(watched),
        runtime.connection() as conn,
    ):  # the ledger's clock: its rows say when items finished
        since = clock.db_now(conn) - timedelta(seconds=5)
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]
        name, parameters=params, timeout=0, as_subflow=False
    )
    echo(f"triggered {name}: flow run {flow_run.name} ({flow_run.id})")
    if not watch:
        return str(flow_run.id)
    total = len(request.items())
    with (
        targets.using(watched),
        get_client(sync_client=True) as client,
        runtime.connection() as conn,
        typer.progressbar(
            length=total, label=f"backfill {request.start}..{request.end}", file=sys.stderr
        ) as bar,
    ):
        while True:
            run = client.read_flow_run(flow_run.id)
            bar.update(max(0, min(total, finished_since(conn, request.key, since)) - bar.pos))
            if run.state is not None and run.state.is_final():
                break
            time.sleep(poll_seconds)
        bar.update(max(0, total - bar.pos))
    state = run.state
    echo(f"flow run {flow_run.name}: {state.name if state else 'unknown'}")
    if state is not None and not state.is_completed():
        message = state.message or state.name or "unknown"
        if "ProblemsFound" in message:
            raise ProblemsFound(f"backfill found problems: {message}")
        if "ConfigError" in message:
            raise ConfigError(f"backfill rejected: {message}")
        raise InfrastructureError(f"backfill flow run ended {state.name}: {message}")
    return str(flow_run.id)
