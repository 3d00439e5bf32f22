"""A job's result as the terminal shows it: what happened and where it went, never a raw dict."""

from __future__ import annotations

from typing import Any


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def describe(job: str, result: Any) -> str:
    """One line (or a few for the report's files) for ``pgtender run JOB``."""
    if not isinstance(result, dict):
        return f"{job}: {result}" if result is not None else f"{job}: done"
    if "skipped" in result and isinstance(result["skipped"], str):
        return f"{job}: skipped: {result['skipped']}"
    if job == "report" and "eml" in result:
        head = (
            f"report {result.get('week')}: written, nothing sent (dry run)"
            if result.get("dry_run")
            else f"report {result.get('week')}: sent to {result.get('sent', 0)} recipient(s)"
        )
        lines = [head]
        if result.get("coverage"):
            lines.append(f"  quality: {result['coverage']}")
        lines += [f"  {result['html']}", f"  {result['eml']}"]
        if result.get("directory"):
            lines.append(f"  (and report.txt, charts) in {result['directory']}")
        return "\n".join(lines)
    shown = {k: v for k, v in result.items() if _scalar(v) and k not in ("operation_id",)}
    counts = result.get("counts")
    if isinstance(counts, dict):
        shown.update({k: v for k, v in counts.items() if _scalar(v)})
    text = ", ".join(
        f"{k} {round(v, 1) if isinstance(v, float) else v}"
        for k, v in shown.items()
        if v not in (None, "", False)
    )
    return f"{job}: done" + (f": {text}" if text else "")
