"""Great Expectations suites as code: one module a table family, plain data, no GX import here.

A suite is a :class:`Suite`: one table, one time column, and a tuple of :class:`Expectation`s.
Each expectation is a GX Core 1.x expectation type (snake_case, e.g.
``expect_column_values_to_be_in_set``) with its GX keyword arguments, so it means exactly what GX
says it means; pgtender evaluates the supported types in one fused SQL scan of the window
(``flows/quality/compiler.py``, checked against GX itself by the tests) and hands any other GX type to
GX on a query asset of the same window. Values known only at run time (the run's clock, the
window bounds) are written as :data:`NOW`, :data:`WINDOW_START`, :data:`WINDOW_END` (plus or
minus a ``timedelta``).

Adding an expectation = adding one line to the suite's module, e.g. in ``checks/learning_events.py``::

    not_null("user_id", mostly=0.99),

Severity (like dbt tests' ``severity`` and Soda's fail/warn checks): an ``error`` expectation that
does not pass fails its suite whatever the score; a ``warn`` one only lowers the score (the trend
the weekly report draws). ``error`` is for the incidents a daily suite exists to catch, which a
weighted average must never hide: the day's volume collapsed (the learned band, added by
``Suite(volume=True)``), the feed is stale (:func:`fresh`), keys are duplicated (:func:`unique`,
:func:`compound_unique`) or rows point at nothing (:func:`references`). Those helpers default to
``error``; every other helper defaults to ``warn``, and a suite module that makes another one
``error`` says why next to it. The policy can override any expectation's severity
(``[quality.suites.<suite>] severity = {<key> = "warn"}``). GX 1.x carries the same notion
(``FailureSeverity``: ``error`` is GX's ``critical``, ``warn`` its ``warning``), so the Data Docs'
validation results carry it too.

Importing this package does no work: no settings, no connection, no GX.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

ParamName = Literal["now", "window_start", "window_end"]
Severity = Literal["error", "warn"]
ERROR: Severity = "error"
WARN: Severity = "warn"
SEVERITIES: tuple[Severity, ...] = (ERROR, WARN)


@dataclass(frozen=True)
class Param:
    """A timestamp known only at run time, optionally shifted: ``WINDOW_END - timedelta(hours=2)``."""

    name: ParamName
    offset: timedelta = timedelta(0)

    def __add__(self, other: timedelta) -> Param:
        return Param(self.name, self.offset + other)

    def __sub__(self, other: timedelta) -> Param:
        return Param(self.name, self.offset - other)


NOW = Param("now")
WINDOW_START = Param("window_start")
WINDOW_END = Param("window_end")


@dataclass(frozen=True)
class Reference:
    """``column`` must name an existing ``table.ref_column`` (a foreign reference without an FK)."""

    column: str
    table: str
    ref_column: str = "id"


@dataclass(frozen=True)
class Expectation:
    """One GX expectation of a suite.

    ``key`` names the check inside the suite (``data_quality_checks.check_name`` is
    ``quality.<suite>.<key>``); ``type``/``kwargs`` are GX's; ``weight`` counts in the suite score;
    ``severity``: ``error`` fails the suite when the expectation does not pass, ``warn`` only
    lowers the score.
    ``reference`` / ``where`` mark an ``unexpected_rows_expectation`` built by :func:`references` /
    :func:`rows_where` (GX runs ``SELECT * FROM {batch} WHERE <condition>``; pgtender counts the
    same condition in its fused scan).
    """

    key: str
    type: str
    kwargs: Mapping[str, Any]
    weight: float = 1.0
    reference: Reference | None = None
    where: str | None = None
    notes: str = ""
    severity: Severity = WARN


@dataclass(frozen=True)
class Suite:
    """The expectations of one table over one window.

    ``scope="window"``: rows whose ``time_column`` is in ``[window_start, window_end)`` (a
    half-open range the planner prunes to one partition). ``scope="as_of"``: every row with
    ``time_column < window_end`` (small reference tables such as ml_models).
    ``volume``: add ``expect_table_row_count_to_be_between`` with a band learned from recent days
    (key ``row_count_in_band``, severity ``error``: a collapsed or exploded day fails the suite).
    ``requires_rows``: an empty window fails the suite (otherwise it is skipped).
    """

    name: str
    table: str
    time_column: str
    expectations: tuple[Expectation, ...]
    key_column: str = "id"
    scope: Literal["window", "as_of"] = "window"
    volume: bool = False
    requires_rows: bool = False
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def _kw(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def not_null(
    column: str,
    *,
    mostly: float | None = None,
    weight: float = 1.0,
    key: str = "",
    severity: Severity = WARN,
) -> Expectation:
    return Expectation(
        key or f"{column}_not_null",
        "expect_column_values_to_not_be_null",
        _kw(column=column, mostly=mostly),
        weight,
        severity=severity,
    )


def in_set(
    column: str,
    values: list[str],
    *,
    mostly: float | None = None,
    weight: float = 1.0,
    key: str = "",
    severity: Severity = WARN,
) -> Expectation:
    return Expectation(
        key or f"{column}_in_set",
        "expect_column_values_to_be_in_set",
        _kw(column=column, value_set=list(values), mostly=mostly),
        weight,
        severity=severity,
    )


def between(
    column: str,
    *,
    min_value: float | Param | None = None,
    max_value: float | Param | None = None,
    strict_min: bool | None = None,
    strict_max: bool | None = None,
    mostly: float | None = None,
    weight: float = 1.0,
    key: str = "",
    severity: Severity = WARN,
) -> Expectation:
    return Expectation(
        key or f"{column}_between",
        "expect_column_values_to_be_between",
        _kw(
            column=column,
            min_value=min_value,
            max_value=max_value,
            strict_min=strict_min,
            strict_max=strict_max,
            mostly=mostly,
        ),
        weight,
        severity=severity,
    )


def not_in_future(column: str, *, weight: float = 1.0, severity: Severity = WARN) -> Expectation:
    """No timestamp after the moment the check runs."""
    return between(column, max_value=NOW, weight=weight, key=f"{column}_not_in_future", severity=severity)


def unique(column: str, *, weight: float = 1.0, key: str = "", severity: Severity = ERROR) -> Expectation:
    """A key column: a duplicated value is a re-delivered or double-written row (``error``)."""
    return Expectation(
        key or f"{column}_unique",
        "expect_column_values_to_be_unique",
        {"column": column},
        weight,
        severity=severity,
    )


def compound_unique(
    columns: list[str],
    *,
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] | None = None,
    weight: float = 1.0,
    key: str = "",
    severity: Severity = ERROR,
) -> Expectation:
    """A natural key over several columns: duplicates are re-deliveries (``error``)."""
    return Expectation(
        key or ("_".join(columns) + "_unique"),
        "expect_compound_columns_to_be_unique",
        _kw(column_list=list(columns), ignore_row_if=ignore_row_if),
        weight,
        severity=severity,
    )


def column_max_between(
    column: str,
    *,
    min_value: float | Param | None = None,
    max_value: float | Param | None = None,
    weight: float = 1.0,
    key: str = "",
    severity: Severity = WARN,
) -> Expectation:
    return Expectation(
        key or f"{column}_max_between",
        "expect_column_max_to_be_between",
        _kw(column=column, min_value=min_value, max_value=max_value),
        weight,
        severity=severity,
    )


def fresh(column: str, *, max_gap: timedelta, weight: float = 1.0, severity: Severity = ERROR) -> Expectation:
    """Freshness: the newest ``column`` of the window is at most ``max_gap`` before its end.

    ``error``: a feed that stopped early in the day is an incident whatever else the rows say.
    """
    return column_max_between(
        column, min_value=WINDOW_END - max_gap, weight=weight, key=f"{column}_fresh", severity=severity
    )


def references(
    column: str, table: str, ref_column: str = "id", *, weight: float = 1.0, severity: Severity = ERROR
) -> Expectation:
    """Every non-null ``column`` names a row of ``table`` (GX ``UnexpectedRowsExpectation``).

    ``error``: a row pointing at nothing is a broken foreign reference.
    """
    return Expectation(
        f"{column}_references_{table}",
        "unexpected_rows_expectation",
        {},
        weight,
        reference=Reference(column, table, ref_column),
        severity=severity,
    )


def rows_where(key: str, condition: str, *, weight: float = 1.0, severity: Severity = WARN) -> Expectation:
    """No row of the window satisfies ``condition`` (static SQL over the table's own columns)."""
    return Expectation(key, "unexpected_rows_expectation", {}, weight, where=condition, severity=severity)


# The suite modules, in run order. A new family: add its module name here.
MODULES: tuple[str, ...] = (
    "learning_events",
    "system_performance_metrics",
    "ml_models",
    "predictions",
    "evolution",
    "llm_interactions",
    "patterns",
)


def all_suites() -> dict[str, Suite]:
    """Every suite by name, in run order (imports the small suite modules; no GX)."""
    out: dict[str, Suite] = {}
    for module_name in MODULES:
        module = importlib.import_module(f"checks.{module_name}")
        for suite in module.SUITES:
            if suite.name in out:
                raise ValueError(f"duplicate quality suite name {suite.name!r}")
            keys = [e.key for e in suite.expectations]
            if len(keys) != len(set(keys)):
                raise ValueError(f"suite {suite.name!r} has duplicate expectation keys")
            for exp in suite.expectations:
                if exp.severity not in SEVERITIES:
                    raise ValueError(f"suite {suite.name!r}: {exp.key} has severity {exp.severity!r}")
            out[suite.name] = suite
    return out
