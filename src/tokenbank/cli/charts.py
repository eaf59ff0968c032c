"""PNG charts with matplotlib (the ``charts`` extra), drawn off-screen with the Agg canvas.

matplotlib is imported only when a chart is drawn, so the rest of the command never pays for it; without it,
:func:`require` raises a ConfigurationError naming the extra to install.
"""

from __future__ import annotations

import importlib.util
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenbank.errors import ConfigurationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL = "pip install 'tokenbank[charts]'"
OURS, BASELINE = "#2a6fb0", "#a0a0a0"
MET, MISSED, INFO = "#1b7f3b", "#b3261e", "#333333"
TYPE_COLOURS = {
    "transfer": "#2a6fb0",
    "mint": "#1b7f3b",
    "burn": "#b3261e",
    "hold": "#e39b1b",
    "capture": "#7b4fb0",
    "void": "#8c8c8c",
    "reversal": "#d45d9e",
}
DPI = 110


def require() -> None:
    """Fail early, before a long run, when matplotlib is missing. Raises ConfigurationError."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigurationError(f"charts need matplotlib, which is not installed: {INSTALL}")


def _figure(width: float, height: float) -> Figure:
    require()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png", dpi=DPI)
    return path


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3g}"


# benchmarks ----------------------------------------------------------------------------------------------------
def bench_chart(title: str, rows: Sequence[Mapping[str, Any]], footer: str, path: Path) -> Path:
    """One panel per figure (each on its own scale): tokenbank's bar beside its baseline's, the ratio above."""
    columns = min(4, len(rows))
    lines = math.ceil(len(rows) / columns)
    figure = _figure(4.1 * columns, 3.5 * lines + 0.9)
    figure.suptitle(title, fontsize=13, fontweight="bold")
    figure.supxlabel(textwrap.fill(footer, 40 * columns), fontsize=8, color="#555555")
    for index, row in enumerate(rows):
        _bench_panel(figure.add_subplot(lines, columns, index + 1), row)
    return _save(figure, path)


def _bench_panel(axes: Axes, row: Mapping[str, Any]) -> None:
    ours, baseline = float(row["ours"]), float(row["baseline"])
    bars = axes.bar([0, 1], [ours, baseline], color=[OURS, BASELINE], width=0.6)
    axes.bar_label(bars, labels=[_number(ours), _number(baseline)], fontsize=8, padding=2)
    axes.set_xticks([0, 1], ["tokenbank", textwrap.fill(str(row["baseline_name"]), 24)], fontsize=7.5)
    axes.set_title(textwrap.fill(str(row["figure"]), 40), fontsize=9)
    better = "higher is better" if row["higher_is_better"] else "lower is better"
    axes.set_ylabel(f"{row['unit']} ({better})", fontsize=7.5)
    axes.tick_params(axis="y", labelsize=7)
    top = max(ours, baseline)
    axes.set_ylim(0, top * 1.45 or 1)
    if top >= 1000:
        from matplotlib.ticker import StrMethodFormatter

        axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    met = row["met"]
    colour = INFO if met is None else MET if met else MISSED
    verdict = "" if row["target"] is None else f"\ntarget {row['target']}: {'met' if met else 'NOT met'}"
    ratio = row["ratio"]
    text = f"ratio {ratio:.2f}" if ratio is not None else "ratio -"
    axes.text(0.5, 0.97, text + verdict, transform=axes.transAxes, ha="center", va="top", fontsize=9,
              fontweight="bold", color=colour)  # fmt: skip
    axes.spines[["top", "right"]].set_visible(False)


# the demo economy ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Economy:
    """What the demo's charts show, as plain numbers (amounts as floats: for drawing only)."""

    symbol: str
    balances: list[float]
    excluded: list[str]
    events: list[tuple[datetime, str, float]]  # (time, transaction type, amount)
    holders: list[tuple[str, float]]
    summary: str  # percentiles and Gini from the bank's analytics, or "" where the store has none


def balance_chart(economy: Economy, path: Path) -> Path:
    """Histogram of positive balances on log-spaced bins (balances span orders of magnitude)."""
    positive = sorted(value for value in economy.balances if value > 0)
    zero = len(economy.balances) - len(positive)
    figure = _figure(9, 5)
    axes = figure.add_subplot()
    if positive:
        low, high = math.log10(positive[0]), math.log10(positive[-1])
        steps = 40
        edges = (
            [10 ** (low + (high - low) * i / steps) for i in range(steps + 1)]
            if high > low
            else [positive[0] * 0.9, positive[0] * 1.1]
        )
        axes.hist(positive, bins=edges, color=OURS, edgecolor="white", linewidth=0.4)
        axes.set_xscale("log")
    axes.set_xlabel(f"spendable balance ({economy.symbol}, log scale)")
    axes.set_ylabel("accounts")
    left_out = f"; not shown: {zero:,} at 0" if zero else ""
    if economy.excluded:
        left_out += f"; leaderboard exclusions left out ({', '.join(economy.excluded)})"
    title = f"Balance distribution: {len(positive):,} accounts{left_out}"
    axes.set_title(title + (f"\n{economy.summary}" if economy.summary else ""), fontsize=11)
    axes.spines[["top", "right"]].set_visible(False)
    return _save(figure, path)


BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)


def bucket_seconds(span: float, most: int = 60) -> float:
    """The narrowest bucket that cuts ``span`` seconds into at most ``most`` buckets."""
    return next((width for width in BUCKETS if span / width <= most), BUCKETS[-1])


def volume_chart(economy: Economy, path: Path) -> Path:
    """Transactions per second (stacked by type) and tokens moved per second, in time buckets that fit the run."""
    figure = _figure(10, 6.5)
    count_axes, volume_axes = figure.subplots(2, 1, sharex=True)
    events = sorted(economy.events)
    origin = events[0][0] if events else None
    span = (events[-1][0] - events[0][0]).total_seconds() if events else 0.0
    width = bucket_seconds(span)
    buckets = int(span // width) + 1
    counts: dict[str, list[float]] = {}
    volume = [0.0] * buckets
    for when, kind, amount in events:
        assert origin is not None
        index = int((when - origin).total_seconds() // width)
        counts.setdefault(kind, [0.0] * buckets)[index] += 1 / width
        volume[index] += amount / width
    starts = [i * width for i in range(buckets)]
    bottom = [0.0] * buckets
    for kind in sorted(counts, key=lambda k: list(TYPE_COLOURS).index(k) if k in TYPE_COLOURS else 99):
        count_axes.bar(starts, counts[kind], width=width * 0.9, bottom=bottom, align="edge", label=kind,
                       color=TYPE_COLOURS.get(kind, INFO))  # fmt: skip
        bottom = [b + c for b, c in zip(bottom, counts[kind], strict=True)]
    volume_axes.bar(starts, volume, width=width * 0.9, align="edge", color=OURS)
    volume_axes.set_yscale("log")  # an airdrop moves far more per second than the trading after it
    label = f"{width:g} s" if width < 60 else f"{width / 60:g} min"
    count_axes.set_ylabel("transactions/s")
    count_axes.set_ylim(0, max(bottom, default=0) * 1.3 or 1)  # room for the legend above the bars
    count_axes.legend(fontsize=8, ncols=7, loc="upper center")
    volume_axes.set_ylabel(f"{economy.symbol} moved/s (log scale)")
    started = f", from {origin:%Y-%m-%d %H:%M:%S} UTC" if origin else ""
    volume_axes.set_xlabel(f"seconds since the first transaction{started} (buckets of {label})")
    count_axes.set_title(f"Volume over time: {len(events):,} transactions in {span:.1f} s", fontsize=11)
    for axes in (count_axes, volume_axes):
        axes.spines[["top", "right"]].set_visible(False)
    return _save(figure, path)


def holders_chart(economy: Economy, path: Path) -> Path:
    """The leaderboard's top accounts as horizontal bars, the richest on top."""
    holders = economy.holders
    figure = _figure(9, max(3.0, 0.32 * len(holders) + 1.4))
    axes = figure.add_subplot()
    names = [name for name, _ in reversed(holders)]
    values = [value for _, value in reversed(holders)]
    bars = axes.barh(names, values, color=OURS)
    axes.bar_label(bars, labels=[f"{value:,.2f}" for value in values], fontsize=8, padding=3)
    axes.set_xlabel(f"spendable balance ({economy.symbol})")
    axes.set_xlim(0, (max(values) if values else 1) * 1.18)
    axes.tick_params(axis="y", labelsize=8)
    axes.set_title(f"Top {len(holders)} holders (the leaderboard)", fontsize=11)
    axes.spines[["top", "right"]].set_visible(False)
    return _save(figure, path)
