"""PNG plots for ``rnnexp report``: time and GFLOP/s against size, saturation against init, state norm over time.

Each plot is drawn only when the data can show it (a size that varies, an init that varies, a
steps.csv), so a report never holds an empty or one-point chart.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit, same output on CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, ScalarFormatter  # noqa: E402

from rnnexp import columns  # noqa: E402

UNITS = {"hidden_size": "units", "input_size": "features", "batch_size": "sequences", "timesteps": "steps"}
SIZES = ("hidden_size", "batch_size", "timesteps", "input_size", "layers")  # first that varies is the x axis
MAX_LEGEND = 12  # more series than this and the legend would hide the plot
DPI = 110
LINES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"] if "status" in df else df


def _others(df: pd.DataFrame, skip: set[str]) -> list[str]:
    """Configuration columns, other than ``skip``, that vary: each combination becomes its own line."""
    cfg = [*columns.CONFIG_COLUMNS, "source"]
    return [c for c in cfg if c in df and c not in skip and df[c].nunique(dropna=False) > 1]


def _label(keys: tuple, names: list[str]) -> str:
    return ", ".join(f"{n}={k}" if n != "backend" else str(k) for n, k in zip(names, keys, strict=True))


def _style(color_key, style_key, colors: dict, styles: dict) -> dict:
    """A colour per ``color_key`` (a backend, a job) and a line style and marker per ``style_key``."""
    color = colors.setdefault(color_key, f"C{len(colors) % 10}")
    n = len(styles)
    line, marker = styles.setdefault(style_key, (LINES[n % len(LINES)], MARKERS[n % len(MARKERS)]))
    return {"color": color, "linestyle": line, "marker": marker}


def _plain_ticks(ax, values) -> None:
    """Log x labelled with the sizes actually run (8, 32, 128); log y in plain numbers (0.2, not 2x10^-1)."""
    ax.set_xticks(sorted(set(values)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if ax.get_yscale() == "log":
        low, high = ax.get_ylim()
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain if high / low < 30 else NullFormatter())  # minor labels crowd many decades


def _save(fig, ax, out: Path, name: str, n_series: int) -> Path:
    if n_series > 1:  # outside the axes: inside, it hides the lines it names
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.grid(True, which="both", alpha=0.3)
    path = out / name
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # grows the canvas to hold the outside legend
    plt.close(fig)
    return path


def _by_size(df: pd.DataFrame, value: str, ylabel: str, title: str, out: Path, name: str) -> Path | None:
    """``value`` against the first size that varies, one line per backend (and per other varying config)."""
    ok = _ok(df)
    if value not in ok or ok[value].isna().all() or "backend" not in ok:
        return None
    x = next((s for s in SIZES if s in ok and ok[s].nunique() > 1), None)
    if x is None:
        return None
    names = ["backend", *_others(ok, {x, "backend"})]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    groups, colors, styles = list(ok.groupby(names, sort=True)), {}, {}
    for keys, g in groups:
        line = g.groupby(x)[value].median().dropna()
        spread = value == "time_median_ms" and "time_iqr_ms" in g
        yerr = g.groupby(x)["time_iqr_ms"].median().reindex(line.index) / 2 if spread else None
        style = _style(keys[0], keys[1:], colors, styles)  # names[0] is backend
        ax.errorbar(line.index, line.values, yerr=yerr, capsize=3, label=_label(keys, names), **style)
    ax.set(xscale="log", yscale="log", xlabel=f"{x} ({UNITS.get(x, 'count')})", ylabel=ylabel)
    _plain_ticks(ax, ok[x])
    ax.set_title(title)
    return _save(fig, ax, out, name, len(groups))


def time_vs_size(df: pd.DataFrame, out: Path) -> Path | None:
    title = "Forward time against size (median; bars: IQR)"
    return _by_size(df, "time_median_ms", "median forward time (ms)", title, out, "time_vs_size.png")


def gflops_vs_size(df: pd.DataFrame, out: Path) -> Path | None:
    return _by_size(df, "gflops", "throughput (GFLOP/s)", "Throughput against size", out, "gflops_vs_size.png")


def saturation_vs_init(df: pd.DataFrame, out: Path) -> Path | None:
    """Saturated fraction of hidden values against init_gain (one line per init), or per init as bars."""
    ok = _ok(df)
    if "h_saturation_frac" not in ok or not any(c in ok and ok[c].nunique() > 1 for c in ("init", "init_gain")):
        return None
    if "backend" in ok and (ok["backend"] == "numpy").any():
        ok = ok[ok["backend"] == "numpy"]  # statistics agree across backends; the reference's stand for all
    fig, ax = plt.subplots(figsize=(7.5, 5))
    if "init_gain" in ok and ok["init_gain"].nunique() > 1:
        names = [c for c in ["init", *_others(ok, {"init", "init_gain", "backend"})] if c in ok]
        groups = list(ok.groupby(names, sort=True))
        for keys, g in groups:
            line = g.groupby("init_gain")["h_saturation_frac"].mean()
            ax.plot(line.index, line.values, marker="o", label=_label(keys, names))
        ax.set(xscale="log", xlabel="init_gain (multiplier of the init's scale)")
        _plain_ticks(ax, ok["init_gain"])
        n_series = len(groups)
    else:
        bars = ok.groupby("init")["h_saturation_frac"].mean()
        ax.bar(bars.index.astype(str), bars.values, color="tab:blue")
        ax.set(xlabel="init (weight initialisation)")
        n_series = 1
    ax.set(ylabel="saturated fraction of hidden values (|h| > 0.99)", ylim=(-0.02, 1.02))
    ax.set_title("Hidden-state saturation against initialisation")
    return _save(fig, ax, out, "saturation_vs_init.png", n_series)


def state_norm(df: pd.DataFrame, steps: pd.DataFrame | None, out: Path) -> Path | None:
    """||h_t|| over timesteps from steps.csv, one line per job, layer and direction (legend capped)."""
    if steps is None or steps.empty or not {"timestep", "h_norm", "job_num"} <= set(steps.columns):
        return None
    join = [c for c in ("source", "job_num") if c in steps and c in df]
    if "job_num" not in join:
        return None  # steps.csv rows name their job; without job_num in the results they cannot be labelled
    names = [*_others(df, {"source"}), *(["source"] if "source" in df and df["source"].nunique() > 1 else [])]
    keep = list(dict.fromkeys([*join, *names]))
    labelled = steps.merge(df[keep].drop_duplicates(join), on=join, how="left")
    series = [c for c in ("layer", "direction") if c in steps and steps[c].nunique() > 1]  # named only if they vary
    fig, ax = plt.subplots(figsize=(7.5, 5))
    groups, colors, styles = list(labelled.groupby([*join, *series], sort=True)), {}, {}
    for i, (keys, g) in enumerate(groups):
        first = g.iloc[0]
        parts = [_label(tuple(first[n] for n in names), names)] if names else [f"job {first['job_num']}"]
        parts += [f"layer {first[c]}" if c == "layer" else str(first[c]) for c in series]
        style = _style(keys[: len(join)], keys[len(join) :], colors, styles)  # colour: job; style: layer, direction
        g = g.sort_values("timestep")
        ax.plot(g["timestep"], g["h_norm"], label=", ".join(parts) if i < MAX_LEGEND else None, **style, markersize=3)
    positive = labelled["h_norm"][labelled["h_norm"] > 0]
    if len(positive) and positive.max() / positive.min() > 100:  # exploding or vanishing: only a log axis shows both
        ax.set_yscale("log")
    ax.set(xlabel="timestep", ylabel="hidden-state norm ||h_t|| (L2, unitless)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(
        "Hidden-state norm over time"
        + (f" (first {MAX_LEGEND} of {len(groups)} labelled)" if len(groups) > MAX_LEGEND else "")
    )
    return _save(fig, ax, out, "state_norm.png", min(len(groups), MAX_LEGEND))


def make_all(df: pd.DataFrame, steps: pd.DataFrame | None, out: Path) -> list[Path]:
    """Every plot the data supports, written under ``out``; their paths."""
    made = [time_vs_size(df, out), gflops_vs_size(df, out), saturation_vs_init(df, out), state_norm(df, steps, out)]
    return [p for p in made if p is not None]
