"""The weekly report's charts as PNG bytes (matplotlib, Agg backend, imported on first use)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
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
    """Daily quality score (0-100) per suite over the whole week: every day on the axis, days
    without any result shaded and marked "no data", the legend outside the plot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.6, 3.4))
    half = timedelta(hours=12)

    def at(d: date) -> datetime:  # as a datetime: a date plus 12 hours is still the same date
        return datetime.combine(d, time(0))

    for i, (suite, by_day) in enumerate(sorted(scores.items())):
        xs = [at(d) for d in days if d in by_day]
        ax.plot(
            xs,
            [by_day[d] for d in days if d in by_day],
            marker="o",
            linewidth=1.8,
            color=PALETTE[i % len(PALETTE)],
            label=suite,
        )
    missing = [d for d in days if not any(d in by_day for by_day in scores.values())]
    for d in missing:
        ax.axvspan(at(d) - half, at(d) + half, color="#e5e7eb", alpha=0.7, linewidth=0)
        ax.text(at(d), 50, "no data", ha="center", va="center", rotation=90, fontsize=8, color="#6b7280")
    if threshold is not None:
        ax.axhline(threshold, color="#888888", linestyle="--", linewidth=1, label=f"threshold {threshold:g}%")
    ax.set_ylim(0, 105)
    ax.set_xlim(at(days[0]) - half, at(days[-1]) + half)
    ax.set_xticks([at(d) for d in days])
    ax.set_xticklabels([d.strftime("%a %d") for d in days])
    ax.set_ylabel("score %")
    title = "Daily quality score per suite"
    if missing:
        title += f" ({len(days) - len(missing)} of {len(days)} days validated)"
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _png(fig)


def growth_title(*, projected: bool, ahead_days: int = 28) -> str:
    """The growth chart's title: the dashed projection named only when one is drawn."""
    if projected:
        return f"Table growth, projected {ahead_days} days ahead (dashed); the week shaded"
    return "Table growth; the week shaded"


def growth_figure(
    history: Mapping[str, Sequence[tuple[date, float]]],
    growth_per_day: Mapping[str, float],
    *,
    ahead_days: int = 28,
    week: Sequence[date] = (),
) -> Any:
    """Total size per table (MB) over the recorded days, the fitted growth of a table that has one
    projected dashed (none: no dashed line, no room for it, no word of it in the title); the axis
    covers at least the report's ``week``; the legend outside the plot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.6, 3.6))
    projected = False
    for i, (name, points) in enumerate(history.items()):
        color = PALETTE[i % len(PALETTE)]
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] / 1e6 for p in points], marker=".", linewidth=1.8, color=color, label=name)
        slope = growth_per_day.get(name)
        if slope is not None and points:
            projected = True
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
    if week:
        firsts = [p[0][0] for p in history.values() if p]
        left = min([week[0], *firsts]) - timedelta(days=1)
        ax.set_xlim(left, week[-1] + timedelta(days=(ahead_days if projected else 0) + 1))
        ax.axvspan(week[0], week[-1] + timedelta(days=1), color="#eef2ff", alpha=0.6, linewidth=0)
    ax.set_ylabel("total size (MB)")
    ax.set_title(growth_title(projected=projected, ahead_days=ahead_days))
    ax.grid(alpha=0.3)
    if history:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def table_growth(
    history: Mapping[str, Sequence[tuple[date, float]]],
    growth_per_day: Mapping[str, float],
    *,
    ahead_days: int = 28,
    week: Sequence[date] = (),
) -> bytes:
    """``growth_figure`` as PNG bytes."""
    return _png(growth_figure(history, growth_per_day, ahead_days=ahead_days, week=week))
