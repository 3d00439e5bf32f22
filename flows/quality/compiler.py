"""The fused pre-scan: a suite's GX expectations compiled into ONE aggregate statement over its window.

Every supported GX expectation type becomes an aggregate (or, for uniqueness, a GROUP BY subquery
over the same pruned window) whose value is exactly the metric GX computes for it on PostgreSQL
(``table.row_count``, ``column_values.nonnull.count``, ``<map metric>.unexpected_count``,
``column.max``, ``unexpected_rows_query.row_count``), and success is decided with GX's own rules
(``mostly`` over the non-null/filtered rows, vacuous success on no rows). The tests compare these
results with GX's on the same data. Samples of offenders are fetched afterwards, only for the
expectations that failed, with ``LIMIT``-bounded statements.

No GX import here: this module is plain psycopg.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from checks import Expectation, Param, Suite

Conn = psycopg.Connection[tuple[Any, ...]]

# GX types evaluated by the fused scan; anything else is validated by GX itself.
MAP_NONNULL = {"expect_column_values_to_be_in_set", "expect_column_values_to_be_between"}
SUPPORTED = {
    "expect_column_values_to_not_be_null",
    *MAP_NONNULL,
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_table_row_count_to_be_between",
    "expect_column_max_to_be_between",
    "unexpected_rows_expectation",
}
ROW_COUNT = "expect_table_row_count_to_be_between"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    now: datetime


def resolve(value: Any, window: Window) -> Any:
    """Replace run-time parameters (``NOW``, ``WINDOW_END - 2h``) with timestamps."""
    if isinstance(value, Param):
        base = {"now": window.now, "window_start": window.start, "window_end": window.end}[value.name]
        return base + value.offset
    if isinstance(value, list):
        return [resolve(v, window) for v in value]
    return value


def resolved_kwargs(exp: Expectation, window: Window) -> dict[str, Any]:
    return {k: resolve(v, window) for k, v in exp.kwargs.items()}


def condition_sql(exp: Expectation) -> sql.Composable | None:
    """The row predicate of an ``unexpected_rows_expectation`` built by ``references``/``rows_where``."""
    if exp.reference is not None:
        ref = exp.reference
        col = sql.Identifier(ref.column)
        return sql.SQL("{c} IS NOT NULL AND {c} NOT IN (SELECT {rc} FROM {t})").format(
            c=col, rc=sql.Identifier(ref.ref_column), t=sql.Identifier(ref.table)
        )
    if exp.where is not None:
        return sql.SQL(exp.where)  # static SQL written in checks/
    return None


def unexpected_rows_query(exp: Expectation) -> str:
    """The GX ``unexpected_rows_query`` equivalent to the fused condition."""
    cond = condition_sql(exp)
    if cond is None:
        raise ValueError(f"{exp.key}: unexpected_rows_expectation needs a reference or a condition")
    return sql.SQL("SELECT * FROM {{batch}} WHERE {}").format(cond).as_string(None)


def gx_kwargs(exp: Expectation, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The expectation's complete GX kwargs (adds the unexpected_rows_query of a row condition)."""
    out = dict(kwargs)
    if exp.type == "unexpected_rows_expectation" and "unexpected_rows_query" not in out:
        out["unexpected_rows_query"] = unexpected_rows_query(exp)
        out.setdefault("description", exp.key.replace("_", " "))
    return out


@dataclass
class Fact:
    """What the scan must return for one expectation, and how to read it."""

    index: int
    exp: Expectation
    kwargs: dict[str, Any]
    supported: bool
    bad: sql.Composable | None = None  # row predicate of an unexpected row (map / rows kinds)
    group_cols: list[str] = field(default_factory=list)  # uniqueness
    group_filter: sql.Composable | None = None


class Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> sql.Placeholder:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)


def _range_pred(col: sql.Identifier, kwargs: Mapping[str, Any], params: Params) -> sql.Composable:
    parts: list[sql.Composable] = []
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None:
        op = sql.SQL(">") if kwargs.get("strict_min") else sql.SQL(">=")
        parts.append(sql.SQL("{} {} {}").format(col, op, params.add(lo)))
    if hi is not None:
        op = sql.SQL("<") if kwargs.get("strict_max") else sql.SQL("<=")
        parts.append(sql.SQL("{} {} {}").format(col, op, params.add(hi)))
    if not parts:
        return sql.SQL("true")
    return sql.SQL(" AND ").join(parts)


def plan_fact(index: int, exp: Expectation, window: Window, params: Params) -> Fact:
    kwargs = resolved_kwargs(exp, window)
    fact = Fact(index, exp, kwargs, exp.type in SUPPORTED)
    t = exp.type
    if t == "expect_column_values_to_not_be_null":
        fact.bad = sql.SQL("{} IS NULL").format(sql.Identifier(kwargs["column"]))
    elif t == "expect_column_values_to_be_in_set":
        col = sql.Identifier(kwargs["column"])
        fact.bad = sql.SQL("{c} IS NOT NULL AND NOT ({c} = ANY({v}))").format(
            c=col, v=params.add(list(kwargs["value_set"]))
        )
    elif t == "expect_column_values_to_be_between":
        col = sql.Identifier(kwargs["column"])
        fact.bad = sql.SQL("{c} IS NOT NULL AND NOT ({r})").format(c=col, r=_range_pred(col, kwargs, params))
    elif t in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        if t == "expect_column_values_to_be_unique":
            cols = [kwargs["column"]]
            ignore = "any_value_is_missing"
        else:
            cols = list(kwargs["column_list"])
            ignore = kwargs.get("ignore_row_if", "all_values_are_missing")
        fact.group_cols = cols
        nulls = [sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in cols]
        if ignore == "any_value_is_missing":
            fact.group_filter = sql.SQL("NOT ({})").format(sql.SQL(" OR ").join(nulls))
        elif ignore == "all_values_are_missing":
            fact.group_filter = sql.SQL("NOT ({})").format(sql.SQL(" AND ").join(nulls))
        else:
            fact.group_filter = sql.SQL("true")
    elif t == "unexpected_rows_expectation":
        cond = condition_sql(exp)
        if cond is None:
            fact.supported = False
        else:
            fact.bad = sql.SQL("({})").format(cond)
    return fact


def window_pred(suite: Suite, params: Params, window: Window) -> sql.Composable:
    tcol = sql.Identifier(suite.time_column)
    if suite.scope == "as_of":
        return sql.SQL("{} < {}").format(tcol, params.add(window.end))
    return sql.SQL("{t} >= {s} AND {t} < {e}").format(
        t=tcol, s=params.add(window.start), e=params.add(window.end)
    )


def table_ident(suite: Suite) -> sql.Identifier:
    return sql.Identifier(suite.table)


@dataclass
class Scan:
    query: sql.Composed
    params: dict[str, Any]
    facts: list[Fact]
    columns: list[tuple[int, int, str]]  # (output position, fact index, metric)


def _group_dups(suite: Suite, fact: Fact, where: sql.Composable) -> sql.Composed:
    """The duplicated groups of a uniqueness expectation: their values and sizes."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in fact.group_cols)
    return sql.SQL(
        "SELECT {cols}, count(*) AS n FROM {t} WHERE {w} AND {f} GROUP BY {cols} HAVING count(*) > 1"
    ).format(t=table_ident(suite), w=where, f=fact.group_filter, cols=cols)


def build_scan(
    suite: Suite, expectations: list[Expectation], window: Window, *, sample_size: int = 20
) -> Scan:
    """One statement: the window's row count and every supported expectation's metrics.

    Uniqueness needs its duplicated groups: each is a MATERIALIZED CTE (one GROUP BY over the
    same pruned window) from which both GX's unexpected count (rows in duplicated groups) and a
    sample of the largest groups are read, so a failed uniqueness check costs no second query.
    """
    params = Params()
    where = window_pred(suite, params, window)
    facts = [plan_fact(i, e, window, params) for i, e in enumerate(expectations)]
    select = _Select()
    ctes: list[sql.Composable] = []
    limit = params.add(sample_size)
    for fact in facts:
        if fact.supported:
            _add_fact_metrics(select, fact, suite=suite, where=where, limit=limit, ctes=ctes)
    with_clause = sql.SQL("WITH {} ").format(sql.SQL(", ").join(ctes)) if ctes else sql.SQL("")
    query = sql.SQL("{with_}SELECT {sel} FROM {t} WHERE {w}").format(
        with_=with_clause, sel=sql.SQL(", ").join(select.exprs), t=table_ident(suite), w=where
    )
    return Scan(query, params.values, facts, select.columns)


class _Select:
    """The scan's output: the row count, then each metric's expression and where it is read."""

    def __init__(self) -> None:
        self.exprs: list[sql.Composable] = [sql.SQL("count(*)")]
        self.columns: list[tuple[int, int, str]] = []
        self._shared: dict[str, int] = {}

    def add(self, index: int, metric: str, expr: sql.Composable) -> None:
        # Identical expressions (the non-null count of a column used twice) are computed once.
        text = expr.as_string(None)
        pos = self._shared.get(text)
        if pos is None:
            pos = self._shared[text] = len(self.exprs)
            self.exprs.append(expr)
        self.columns.append((pos, index, metric))


def _add_fact_metrics(
    select: _Select,
    fact: Fact,
    *,
    suite: Suite,
    where: sql.Composable,
    limit: sql.Placeholder,
    ctes: list[sql.Composable],
) -> None:
    """The metrics of one supported expectation (a uniqueness one also adds its CTE to ``ctes``)."""
    t = fact.exp.type
    if fact.bad is not None:
        select.add(fact.index, "unexpected_count", sql.SQL("count(*) FILTER (WHERE {})").format(fact.bad))
    if t in MAP_NONNULL or t == "expect_column_values_to_be_unique":
        select.add(fact.index, "nonnull", sql.SQL("count({})").format(sql.Identifier(fact.kwargs["column"])))
    if fact.group_cols:
        ctes.append(_add_uniqueness_metrics(select, fact, suite=suite, where=where, limit=limit))
    if t == "expect_column_max_to_be_between":
        select.add(
            fact.index, "observed_value", sql.SQL("max({})").format(sql.Identifier(fact.kwargs["column"]))
        )


def _add_uniqueness_metrics(
    select: _Select, fact: Fact, *, suite: Suite, where: sql.Composable, limit: sql.Placeholder
) -> sql.Composable:
    """A uniqueness expectation's counts and sample, read from its duplicated groups: the CTE."""
    if fact.exp.type != "expect_column_values_to_be_unique":
        select.add(
            fact.index,
            "filtered_count",
            sql.SQL("count(*) FILTER (WHERE {})").format(fact.group_filter),
        )
    cte = sql.Identifier(f"dups_{fact.index}")
    select.add(fact.index, "unexpected_count", sql.SQL("(SELECT coalesce(sum(n), 0) FROM {})").format(cte))
    obj = sql.SQL(", ").join(
        sql.SQL("{}, s.{}").format(sql.Literal(c), sql.Identifier(c)) for c in fact.group_cols
    )
    select.add(
        fact.index,
        "sample",
        sql.SQL(
            "(SELECT jsonb_agg(jsonb_build_object({obj}, 'count', s.n) ORDER BY s.n DESC)"
            " FROM (SELECT * FROM {cte} ORDER BY n DESC LIMIT {lim}) s)"
        ).format(obj=obj, cte=cte, lim=limit),
    )
    return sql.SQL("{} AS MATERIALIZED ({})").format(cte, _group_dups(suite, fact, where))
