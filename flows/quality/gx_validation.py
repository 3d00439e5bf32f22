"""Expectations the fused scan lacks, validated by GX itself; its results as outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checks import Suite
from flows.core.engine.outcomes import CheckStatus
from flows.quality.compiler import Fact, Window
from flows.quality.verdicts import Outcome, error_outcome


def gx_outcomes(
    state_dir: Path, dsn: str, suite: Suite, window: Window, facts: list[Fact], *, sample_size: int
) -> list[Outcome]:
    """Validate ``facts`` with GX itself (query asset of the window); internal errors -> error rows."""
    from flows.quality import gx as gx_runtime  # noqa: PLC0415 - imports GX slow only when needed

    try:
        configs = [
            gx_runtime.expectation_configuration(f.exp, f.kwargs, severity=f.exp.severity) for f in facts
        ]
        validation = gx_runtime.validate_with_gx(
            state_dir,
            dsn,
            suite,
            window,
            configs,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": sample_size},
        )
    except Exception as exc:  # noqa: BLE001 - any GX failure must become an error row, never a pass
        return [
            error_outcome(f.exp, f.kwargs, f.exp.weight, f"GX: {type(exc).__name__}: {exc}") for f in facts
        ]
    by_key = {r.expectation_config.meta.get("pgtender_key"): r for r in validation.results}
    out: list[Outcome] = []
    for fact in facts:
        res = by_key.get(fact.exp.key)
        if res is None:
            out.append(error_outcome(fact.exp, fact.kwargs, fact.exp.weight, "GX returned no result"))
            continue
        raised = _gx_exception(res.exception_info or {})
        if raised is not None:
            out.append(error_outcome(fact.exp, fact.kwargs, fact.exp.weight, f"GX: {raised}"))
            continue
        result = dict(res.result or {})
        sample = result.pop("partial_unexpected_list", None)
        result.pop("partial_unexpected_counts", None)
        result.pop("partial_unexpected_index_list", None)
        success = bool(res.success)
        out.append(
            Outcome(
                fact.exp,
                fact.kwargs,
                fact.exp.weight,
                CheckStatus.PASSED if success else CheckStatus.FAILED,
                success,
                result,
                None if success else sample,
                {},
                "gx",
            )
        )
    return out


def _gx_exception(info: dict[str, Any]) -> str | None:
    """GX's exception_info is flat, or keyed by metric id (one entry per failed metric)."""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "GX raised an exception")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "GX raised an exception")
    return None
