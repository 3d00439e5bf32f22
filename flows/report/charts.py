"""The weekly report's charts as PNG bytes (matplotlib, Agg backend, imported on first use)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - heavy; only the report draws

    matplotlib.use("Agg", force=True)  # no display, no GUI toolkit
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def quality_scores(
    days: Sequence[date], scores: Mapping[str, Mapping[date, float]], *, threshold: float | None
) -> bytes:
    """Daily quality score (0-100) per suite over the week's days; the threshold dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    for i, (suite, by_day) in enumerate(sorted(scores.items())):
        xs = [d for d in days if d in by_day]
        ax.plot(
            xs,
            [by_day[d] for d in xs],
            marker="o",
            linewidth=1.8,
            color=PALETTE[i % len(PALETTE)],
            label=suite,
        )
    if threshold is not None:
        ax.axhline(threshold, color="#888888", linestyle="--", linewidth=1, label=f"threshold {threshold:g}%")
    ax.set_ylim(0, 102)
    ax.set_xlim(days[0] - timedelta(hours=12), days[-1] + timedelta(hours=12))
    ax.set_xticks(list(days))
    ax.set_xticklabels([d.strftime("%a %d") for d in days])
    ax.set_ylabel("score %")
    ax.set_title("Daily quality score per suite")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=2, frameon=False)
    return _png(fig)


def table_growth(
    history: Mapping[str, Sequence[tuple[date, float]]],
    growth_per_day: Mapping[str, float],
    *,
    ahead_days: int = 28,
) -> bytes:
    """Total size per table (MB) over the recorded days, the fitted growth projected dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    for i, (name, points) in enumerate(history.items()):
        color = PALETTE[i % len(PALETTE)]
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] / 1e6 for p in points], marker=".", linewidth=1.8, color=color, label=name)
        slope = growth_per_day.get(name)
        if slope is not None and points:
            last_day, last_value = points[-1]
            end = last_day + timedelta(days=ahead_days)
            ax.plot(
                [last_day, end],
                [last_value / 1e6, (last_value + slope * ahead_days) / 1e6],
                linestyle="--",
                linewidth=1.2,
                color=color,
            )
    import matplotlib.dates as mdates  # noqa: PLC0415

    locator = mdates.AutoDateLocator(maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_ylabel("total size (MB)")
    ax.set_title(f"Table growth, projected {ahead_days} days ahead (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return _png(fig)
