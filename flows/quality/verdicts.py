"""What the scanned metrics mean: GX's success rule and result dict per expectation, and the suite's
verdict from its expectations' outcomes and severities (no GX import)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from checks import ERROR, WARN, Expectation, Severity
from flows.core.engine.outcomes import NOT_PASSED, CheckStatus
from flows.core.masking import mask_secrets
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
    severity: Severity = WARN  # the suite's (or the policy's); set by evaluate_suite

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


def error_outcome(exp: Expectation, kwargs: dict[str, Any], weight: float, message: str) -> Outcome:
    """An error row: the expectation could not be evaluated (``message`` masked, one line)."""
    # GX/SQLAlchemy messages may quote the connection URL: mask before it reaches a table or a log.
    text = mask_secrets(" ".join(message.split()))[:2000]
    return Outcome(exp, kwargs, weight, CheckStatus.ERROR, False, {}, None, {"error": text})


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


@dataclass
class Verdict:
    """A suite's status and weighted score, and why (``details`` goes into the suite's row)."""

    status: CheckStatus
    score: float | None
    details: dict[str, Any] = field(default_factory=dict)


def weighted_score(outcomes: list[Outcome]) -> float | None:
    """Percent of the evaluated (not skipped) weight that passed; None when nothing was evaluated."""
    evaluated = [o for o in outcomes if o.status != CheckStatus.SKIPPED]
    total = sum(o.weight for o in evaluated)
    if not evaluated or total <= 0:
        return None
    return round(100.0 * sum(o.weight for o in evaluated if o.success) / total, 4)


def suite_verdict(
    outcomes: list[Outcome], *, row_count: int | None, requires_rows: bool, threshold: float
) -> Verdict:
    """The suite's status: ``failed`` when an ``error`` expectation failed (``error`` when one
    could not be evaluated) whatever the score, when the score is under the threshold, or when a
    suite that requires rows has none; ``warning`` when only ``warn`` expectations did not pass;
    ``skipped`` when nothing could be evaluated; else ``passed``. The score is the trend either way.
    """
    score = weighted_score(outcomes)
    blocking = [o for o in outcomes if o.severity == ERROR and o.status in NOT_PASSED]
    warned = [o.key for o in outcomes if o.severity != ERROR and o.status in NOT_PASSED]
    details: dict[str, Any] = {"blocking": [o.key for o in blocking], "warnings": warned}
    status = CheckStatus.PASSED
    why = ""
    if row_count == 0:
        details["reason"] = "no rows in the window"
        if requires_rows:
            status, score, why = CheckStatus.FAILED, 0.0, "no rows in the window"
        elif score is None:
            status = CheckStatus.SKIPPED
    if status == CheckStatus.PASSED and blocking:
        failed = any(o.status == CheckStatus.FAILED for o in blocking)
        status = CheckStatus.FAILED if failed else CheckStatus.ERROR
        why = "error-severity " + ", ".join(f"{o.key} {o.status}" for o in blocking)
    if status == CheckStatus.PASSED and score is not None and score < threshold:
        status, why = CheckStatus.FAILED, f"score {score:.1f} < {threshold:g}"
    if status == CheckStatus.PASSED and warned:
        status, why = CheckStatus.WARNING, "warn-severity " + ", ".join(warned) + " not passed"
    errors = [o.key for o in outcomes if o.status == CheckStatus.ERROR]
    if errors:
        details["errors"] = errors
    if why:
        details["verdict"] = why
    return Verdict(status, score, details)
