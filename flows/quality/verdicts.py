"""What the scanned metrics mean: GX's success rule and result dict per expectation (no GX import)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from checks import Expectation
from flows.quality.compiler import ROW_COUNT, Fact

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass
class Outcome:
    """One expectation's result, in GX's vocabulary (``result`` is GX's result dict)."""

    exp: Expectation
    kwargs: dict[str, Any]
    weight: float
    status: str  # passed | failed | error | skipped
    success: bool | None
    result: dict[str, Any] = field(default_factory=dict)
    sample: list[Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    engine: str = "fused-scan"  # fused-scan | gx

    @property
    def key(self) -> str:
        return self.exp.key

    @property
    def type(self) -> str:
        return self.exp.type

    @property
    def observed_value(self) -> Any:
        return self.result.get("observed_value")

    @property
    def unexpected_count(self) -> int | None:
        value = self.result.get("unexpected_count")
        return None if value is None else int(value)

    @property
    def unexpected_percent(self) -> float | None:
        value = self.result.get("unexpected_percent")
        return None if value is None else float(value)


def _mostly_ok(considered: int, unexpected: int, mostly: float) -> bool:
    return (considered - unexpected) / considered >= mostly


def _between_ok(value: Any, kwargs: Mapping[str, Any]) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None and (value <= lo if kwargs.get("strict_min") else value < lo):
        return False
    return not (hi is not None and (value >= hi if kwargs.get("strict_max") else value > hi))


def evaluate(fact: Fact, row_count: int, metrics: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """GX's success rule and result dict for one expectation from the scanned metrics."""
    t = fact.exp.type
    mostly = float(fact.kwargs.get("mostly", 1.0))
    if t == ROW_COUNT:
        return _between_ok(row_count, fact.kwargs), {"observed_value": row_count}
    if t == "expect_column_max_to_be_between":
        observed = metrics.get("observed_value")
        return _between_ok(observed, fact.kwargs), {"observed_value": observed}
    if t == "unexpected_rows_expectation":
        unexpected = int(metrics["unexpected_count"])
        return unexpected == 0, {"observed_value": unexpected}
    unexpected = int(metrics["unexpected_count"])
    if t == "expect_column_values_to_not_be_null":
        considered, nonnull = row_count, None
    elif "filtered_count" in metrics:
        considered = nonnull = int(metrics["filtered_count"])
    else:
        considered = nonnull = int(metrics["nonnull"])
    success = True if row_count == 0 or considered == 0 else _mostly_ok(considered, unexpected, mostly)
    result: dict[str, Any] = {
        "element_count": row_count,
        "unexpected_count": unexpected,
        "unexpected_percent": None,
    }
    if row_count > 0:
        total_pct = unexpected / row_count * 100
        if nonnull is None:
            result["unexpected_percent"] = total_pct
        else:
            result["missing_count"] = row_count - nonnull
            result["missing_percent"] = (row_count - nonnull) / row_count * 100
            result["unexpected_percent_total"] = total_pct
            result["unexpected_percent"] = unexpected / nonnull * 100 if nonnull > 0 else None
            result["unexpected_percent_nonmissing"] = result["unexpected_percent"]
    return success, result
