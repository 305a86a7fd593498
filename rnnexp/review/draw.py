"""Drawing helpers for the review plots: legend-true styles, small multiples, readable log axes.

Every series gets its own colour, marker and line style, the same in every panel of a figure, and
one legend lists exactly the series drawn. When there are more series than a reader can tell
apart (MAX_SERIES), the figure is split into panels (facets) by a configuration key.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit, same output on CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator  # noqa: E402

from rnnexp.fileio import write_atomic  # noqa: E402
from rnnexp.review.axes import MAX_TICKS, wants_log  # noqa: E402
from rnnexp.review.keys import text  # noqa: E402

MAX_SERIES = 8  # per panel: beyond this, colours and markers stop being told apart at a glance
MAX_PANELS = 16
DENSE = 30  # points per line past which markers and error bars give way to a line and a band
DPI = 110
COLORS = plt.get_cmap("tab10").colors
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINES = ("-", "--", ":", "-.")


class Styles:
    """A distinct (colour, marker, line style) per series label, handed out in order, kept across panels."""

    def __init__(self) -> None:
        self.by_label: dict[str, dict] = {}

    def __call__(self, label: str) -> dict:
        if label not in self.by_label:
            i = len(self.by_label)
            # colour and marker advance together, so two series never share both; line style every 10
            self.by_label[label] = {
                "color": COLORS[i % len(COLORS)],
                "marker": MARKERS[i % len(MARKERS)],
                "linestyle": LINES[(i // len(COLORS)) % len(LINES)],
            }
        return self.by_label[label]


def gain_colors(n: int) -> list:
    """``n`` colours in one ordered scale (light to dark), for lines that are steps of one quantity."""
    cmap = plt.get_cmap("viridis")
    return [cmap(0.85 - 0.8 * i / max(n - 1, 1)) for i in range(n)]


def label_of(row: pd.Series | dict, keys: list[str]) -> str:
    """'backend=torch, layers=2' (a backend's or cell's name alone: it says what it is)."""
    parts = [text(row[k]) if k in ("backend", "cell", "source") else f"{k}={text(row[k])}" for k in keys]
    return ", ".join(parts) if parts else "all rows"


def choose_facets(
    df: pd.DataFrame,
    series_keys: list[str],
    preferred: tuple[str, ...] = ("cell",),
    candidates: list[str] | None = None,
) -> list[str]:
    """The fewest series keys (of ``candidates``, default all) to split panels by so that no panel holds more
    than MAX_SERIES series."""

    def worst(facets: list[str]) -> int:
        rest = [k for k in series_keys if k not in facets]
        if not rest:
            return 1
        groups = df.groupby(facets, dropna=False) if facets else [(None, df)]
        return max(len(g[rest].drop_duplicates()) for _, g in groups)

    if worst([]) <= MAX_SERIES:
        return []
    pool = [k for k in series_keys if candidates is None or k in candidates]
    if not pool:
        return []
    ranked = sorted(pool, key=lambda k: (k not in preferred, df[k].nunique(dropna=False)))
    for size in (1, 2):
        fits = [list(c) for c in itertools.combinations(ranked, size) if worst(list(c)) <= MAX_SERIES]
        fits = [f for f in fits if len(df[f].drop_duplicates()) <= MAX_PANELS]
        if fits:
            return min(fits, key=lambda f: (len(df[f].drop_duplicates()), [ranked.index(k) for k in f]))
    return ranked[:1]


def panels(n: int, width: float = 5.0, height: float = 3.8, across: int = 3):
    """A figure with ``n`` axes in a grid (at most ``across`` wide), sharing nothing; the axes as a flat list."""
    cols = min(n, across)
    rows = math.ceil(n / cols)
    # constrained layout makes room for the suptitle however tall the figure (tight_layout overlaps it)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 2.5, height * rows), squeeze=False,
                             layout="constrained")  # fmt: skip
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def nice_ticks(low: float, high: float) -> list[float]:
    """Tick values on a log axis: 1-2-5 per decade, or finer (1..9) when the data spans under a decade."""
    if not (low > 0 and high > 0):
        return []
    span = math.log10(high / low)
    if span < 0.5:  # under half a decade a log axis looks linear: plain evenly spaced ticks read best
        ticks = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
        return [float(t) for t in ticks if low * 0.999 <= t <= high * 1.001]
    steps = (1, 2, 5) if span > 1.2 else (1, 1.5, 2, 3, 5, 7)
    if span > 4:
        steps = (1,)
    ticks = []
    for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        ticks += [s * 10.0**e for s in steps]
    inside = [t for t in ticks if low * 0.999 <= t <= high * 1.001]
    return inside if len(inside) >= 2 else [low, high]


def plain(value: float, _pos=None) -> str:
    return f"{value:g}"


def log_axis(ax, axis: str, values) -> None:
    """A log axis labelled in plain numbers across the data's whole range (never one label per decade)."""
    values = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return
    low, high = values.min(), values.max()
    pad = (high / low) ** 0.05 if high > low else 1.2
    lo, hi = low / pad, high * pad
    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)
    which.set_major_locator(FixedLocator(nice_ticks(lo, hi)))
    which.set_major_formatter(FuncFormatter(plain))
    which.set_minor_locator(NullLocator())
    which.set_minor_formatter(NullFormatter())


def linear_axis(ax, axis: str) -> None:
    """A linear axis with at most MAX_TICKS round tick labels."""
    which = ax.xaxis if axis == "x" else ax.yaxis
    which.set_major_locator(MaxNLocator(nbins=MAX_TICKS - 2, steps=[1, 2, 2.5, 5, 10]))
    which.set_major_formatter(FuncFormatter(plain))


def value_axis(ax, axis: str, values) -> None:
    """Log when the values span more than LOG_SPAN times (small ones would vanish on a linear axis), else linear."""
    if wants_log(values):
        log_axis(ax, axis, values)
    else:
        linear_axis(ax, axis)


def size_ticks(ax, values) -> None:
    """An x axis of sizes: few sizes are each labelled (8, 64, 256); many get round ticks, never one per size.
    Log when the sizes span more than LOG_SPAN times."""
    sizes = sorted({float(v) for v in pd.to_numeric(pd.Series(values), errors="coerce").dropna()})
    sizes = [v for v in sizes if math.isfinite(v)]
    if len(sizes) > MAX_TICKS or len(sizes) < 2:
        value_axis(ax, "x", sizes)
        return
    log = wants_log(sizes)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(sizes[0] / 1.3, sizes[-1] * 1.3)
    else:
        pad = 0.05 * (sizes[-1] - sizes[0])
        ax.set_xlim(sizes[0] - pad, sizes[-1] + pad)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(plain))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if sum(len(plain(v)) for v in sizes) > 40:  # long labels side by side would touch: tilt them
        ax.tick_params(axis="x", labelrotation=45)


def line_with_spread(ax, xs, ys, yerr, label: str, style: dict) -> bool:
    """A series, with error bars when it has few points; whether they were drawn. Bars (or bands) on hundreds
    of noisy points bury the lines under each other, so a dense series is its line alone."""
    if len(xs) <= DENSE:
        ax.errorbar(xs, ys, yerr=yerr, capsize=3, label=label, **style)
        return yerr is not None
    ax.plot(xs, ys, label=label, markersize=2.5, markevery=max(1, len(xs) // DENSE), **style)
    return False


def finish(fig, axes, styles: Styles, out: Path, name: str, title: str, per_panel: bool = False) -> Path:
    """Legends listing exactly the series drawn (one for the figure, outside, or one per panel); then save."""
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
        if per_panel and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    drawn = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            drawn.setdefault(label, handle)
    if len(drawn) > 1 and not per_panel:
        fig.legend(list(drawn.values()), list(drawn), loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize="small")
    fig.suptitle(title)
    try:  # bbox_inches="tight" grows the canvas to hold the outside legend; atomic: no half-drawn file
        return write_atomic(
            out / name, lambda fh: fig.savefig(fh, format="png", dpi=DPI, bbox_inches="tight"), binary=True
        )
    finally:
        plt.close(fig)
