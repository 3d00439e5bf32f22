"""Observed growth against the seed README's storage projections (the comparison artifact)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flows.capacity.projection import Projection
from flows.core import markdown

# The seed README's "Storage Projections" table: component -> (tables, rows/day, bytes/year).
SEED_STORAGE = {
    "Learning Events": (("learning_events",), 1_000_000, 12 * 10**9),
    "Performance Metrics": (("system_performance_metrics",), 10_000_000, 120 * 10**9),
    "Pattern Occurrences": (("pattern_occurrences",), 100_000, 1.2 * 10**9),
    "Evolution Data": (
        ("evolution_experiments", "evolution_generations", "evolution_individuals"),
        1_000,
        0.5 * 10**9,
    ),
}
SEED_TOTAL_BYTES_PER_YEAR = 134 * 10**9


def seed_comparison(projections: list[Projection]) -> list[dict[str, Any]]:
    """Observed growth next to the seed README's storage projections, per component and in total."""
    growth = {(p.metric_name, p.resource_name): p.slope_per_day for p in projections}
    rows: list[dict[str, Any]] = []

    def observed(metric: str, tables: tuple[str, ...]) -> float | None:
        values = [growth[(metric, t)] for t in tables if (metric, t) in growth]
        return sum(values) if values else None

    for component, (tables, seed_rows, seed_bytes) in SEED_STORAGE.items():
        rows_day = observed("row_count", tables)
        bytes_day = observed("total_bytes", tables)
        rows.append(_comparison_row(component, seed_rows, seed_bytes, rows_day, bytes_day))
    db_bytes = next(
        (
            p.slope_per_day
            for p in projections
            if p.metric_name == "total_bytes" and p.resource_type == "database"
        ),
        None,
    )
    rows.append(_comparison_row("Total (database)", None, SEED_TOTAL_BYTES_PER_YEAR, None, db_bytes))
    return rows


def _comparison_row(
    component: str, seed_rows: int | None, seed_bytes: float, rows_day: float | None, bytes_day: float | None
) -> dict[str, Any]:
    annual = None if bytes_day is None else bytes_day * 365
    return {
        "component": component,
        "seed_rows_per_day": seed_rows,
        "observed_rows_per_day": None if rows_day is None else round(rows_day, 1),
        "seed_gb_per_year": round(seed_bytes / 1e9, 3),
        "observed_gb_per_year": None if annual is None else round(annual / 1e9, 3),
        "observed_vs_seed": None if annual is None else round(annual / seed_bytes, 4),
    }


def comparison_markdown(rows: list[dict[str, Any]], projections: list[Projection]) -> str:
    """The capacity-projection artifact (resource names escaped: they render as written)."""

    def cell(v: Any) -> str:
        return "n/a" if v is None else f"{v:,}" if isinstance(v, int | float) else str(v)

    columns = ("seed_rows_per_day", "observed_rows_per_day", "seed_gb_per_year", "observed_gb_per_year")
    lines = [
        "## Storage growth vs the seed's projections",
        "",
        *markdown.table(
            (
                "component",
                "seed rows/day",
                "observed rows/day",
                "seed GB/year",
                "observed GB/year",
                "observed / seed",
            ),
            ([r["component"], *(cell(r[c]) for c in columns), cell(r["observed_vs_seed"])] for r in rows),
            right=(1, 2, 3, 4, 5),
        ),
    ]
    soon = sorted((p for p in projections if p.within_horizon), key=lambda p: p.reaches_at or datetime.max)
    lines += ["", "## Thresholds reached within the horizon", ""]
    if not soon:
        lines.append(
            markdown.text("None (or not enough history yet: projections need several days of snapshots).")
        )
    for p in soon:
        assert p.reaches_at is not None
        lines.append(
            "- "
            + markdown.text(
                f"{p.resource_type} {p.resource_name} {p.metric_name} reaches {p.threshold:,.0f}"
                f" on {p.reaches_at:%Y-%m-%d} (growth {p.slope_per_day:,.0f}/day)"
            )
        )
    return "\n".join(lines)
