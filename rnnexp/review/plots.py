"""PNG plots for ``rnnexp report``, each drawn only when the data can show it.

- time (and GFLOP/s) against the size that varies, or against the modelled work when several
  sizes vary together (DeepBench's kernels); a categorical chart when only structure varies
  (layers x bidirectional x dtype);
- hidden-state saturation against the init and its gain;
- the state norm over time from steps.csv, each distinct reference trajectory drawn once;
- dynamics (lyap_max against init_gain with the seeds' spread, grad_log_norm against the distance
  to the end, saturation beside them) and the training step split by phase, when those columns exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnexp import schema
from rnnexp.review import draw
from rnnexp.review.axes import SIZES, UNITS, finite, ok_rows, source_labels, wants_log, x_of
from rnnexp.review.axes import determined as _determined
from rnnexp.review.inputs import Results, join_keys
from rnnexp.review.keys import SOURCE, minimal_keys, order_rows, varying

PHASES = {"fwd_time_median_ms": "forward", "bwd_data_time_median_ms": "backward (data)",
          "bwd_weights_time_median_ms": "backward (weights)"}  # fmt: skip


def reference_rows(df: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """Statistics agree across backends: the reference's rows stand for all when it ran."""
    if reference is not None and (df["backend"] == reference).any():
        return df[df["backend"] == reference]
    return df


def _series_keys(df: pd.DataFrame, skip: set[str]) -> list[str]:
    keys = [k for k in varying(df) if k not in skip]
    return [*(["backend"] if "backend" in keys else []), *(k for k in keys if k != "backend")]


def _by_sweep(df: pd.DataFrame, series: list[str]) -> list[str]:
    """Several sweeps: the keys to panel by so that each panel's series are the sweeps alone, on shared axes
    (none when that would take more than MAX_PANELS panels, or when one sweep is reviewed)."""
    others = [k for k in series if k != SOURCE]
    if SOURCE not in series or not others or len(df[others].drop_duplicates()) > draw.MAX_PANELS:
        return []
    return others


def _facet_groups(df: pd.DataFrame, facets: list[str]):
    if not facets:
        return [("", df)]
    groups = []
    for keys, g in df.groupby(facets, sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        groups.append((draw.label_of(dict(zip(facets, keys, strict=True)), facets), g))
    return groups


def _context(df: pd.DataFrame, shown: set[str]) -> str:
    """The constant part of the configuration worth naming under a title (sizes and cell)."""
    fixed = [k for k in ("cell", *SIZES, "layers", "dtype") if k in df and k not in shown and df[k].nunique() == 1]
    return ", ".join(f"{k}={df[k].iloc[0]}" for k in fixed)


def drop_determined(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """Keys less those fixed by the others (nonlinearity=relu by cell=rnn in DeepBench): no label repeats itself."""
    keep = list(keys)
    for k in reversed(keys):
        if len(keep) > 1 and _determined(df, [c for c in keep if c != k], k):
            keep.remove(k)
    return keep


def by_size(df: pd.DataFrame, value: str, ylabel: str, title: str, out: Path, name: str) -> Path | None:
    """``value`` against the size that varies; one style per backend and other varying key; panels when many."""
    ok = ok_rows(df)
    if ok.empty or ok[value].isna().all():
        return None
    x = x_of(ok)
    if x is None:
        return None
    ok, dropped = finite(ok, [value, x], log=wants_log(ok[value]))  # an inf or nan time has no place on an axis
    if ok.empty:
        return None
    skip = {x, *SIZES} if x == "flops" else {x, *(s for s in SIZES if _determined(ok, [x], s))}
    series = drop_determined(ok, _series_keys(ok, skip))
    facets = _by_sweep(ok, series) or draw.choose_facets(ok, series)
    series = [k for k in series if k not in facets]
    groups = _facet_groups(order_rows(ok, first=df), facets)
    fig, axes = draw.panels(len(groups))
    styles, bars = draw.Styles(), False
    for ax, (facet, g) in zip(axes, groups, strict=True):
        for _, s in g.groupby(series, sort=False, dropna=False) if series else [((), g)]:
            line = s.groupby(x)[value].median().dropna().sort_index()
            if line.empty:
                continue
            label = draw.label_of(s.iloc[0], series)
            yerr = None
            if value == "time_median_ms":
                yerr = s.groupby(x)["time_iqr_ms"].median().reindex(line.index).to_numpy(dtype=float) / 2
            xs = line.index.to_numpy(dtype=float) / (1e9 if x == "flops" else 1)
            bars |= draw.line_with_spread(ax, xs, line.to_numpy(dtype=float), yerr, label, styles(label))
        ax.set_title(facet, fontsize="medium")
        if x == "flops":
            draw.value_axis(ax, "x", ok[x].to_numpy(dtype=float) / 1e9)
            ax.set_xlabel("modelled work per forward (GFLOP)")
        else:
            draw.size_ticks(ax, ok[x])
            ax.set_xlabel(f"{x} ({UNITS.get(x, 'count')})")
        draw.value_axis(ax, "y", _with_spread(ok, value) if bars else ok[value])
        ax.set_ylabel(ylabel)
    context = "; ".join(filter(None, [_context(ok, {x, *series, *facets}), dropped]))
    if bars:
        title = title.replace("(median)", "(median; bars: IQR)")
    return draw.finish(fig, axes, styles, out, name, title + (f"\n{context}" if context else ""))


def _with_spread(df: pd.DataFrame, value: str) -> np.ndarray:
    """The values an axis must hold: medians, and for times the tops of their IQR bars (a bar reaching
    down past zero would drag a log axis through decades of nothing)."""
    v = df[value].to_numpy(dtype=float)
    if value != "time_median_ms":
        return v
    return np.concatenate([v, v + df["time_iqr_ms"].fillna(0).to_numpy(dtype=float) / 2])


def time_vs_size(df: pd.DataFrame, out: Path) -> Path | None:
    title = "Time per call against size (median)"
    return by_size(df, "time_median_ms", "median time per call (ms)", title, out, "time_vs_size.png")


def gflops_vs_size(df: pd.DataFrame, out: Path) -> Path | None:
    return by_size(df, "gflops", "throughput (GFLOP/s)", "Throughput against size", out, "gflops_vs_size.png")


def category(row, keys: list[str]) -> str:
    """A short tick label, a line per key: '2 layers', 'bidirectional', 'float64'."""
    words = []
    for k in keys:
        v = row[k]
        if k == "layers":
            words.append(f"{v} layer{'s' if v != 1 else ''}")
        elif k == "bidirectional":
            words.append("bidirectional" if v else "forward only")
        elif k in ("dtype", "cell", "backend", "init", "device", "mode"):
            words.append(str(v))
        else:
            words.append(f"{k}={draw.text(v)}")
    return "\n".join(words) or "all"


MAX_CATEGORIES = 12  # category labels per panel: past this they no longer sit side by side


def _most_categories(df: pd.DataFrame, facets: list[str], cats: list[str]) -> int:
    groups = df.groupby(facets, dropna=False) if facets else [(None, df)]
    return max(len(g[cats].drop_duplicates()) for _, g in groups)


def time_by_structure(df: pd.DataFrame, out: Path) -> Path | None:
    """A categorical chart when no size varies: time per structure (layers, direction, dtype, ...) per backend."""
    ok = ok_rows(df)
    if ok.empty or ok["time_median_ms"].isna().all() or x_of(ok) is not None:
        return None
    ok, dropped = finite(ok, ["time_median_ms"], log=wants_log(ok["time_median_ms"]))
    if ok.empty:
        return None
    keys = varying(ok)
    if not keys:
        return None
    series = ["backend"] if "backend" in keys else keys[:1]
    facets = ["cell"] if "cell" in keys and "cell" not in series and len(keys) > 2 else []
    if SOURCE in keys:  # several sweeps: one series each, panels by cell and backend
        series, facets = [SOURCE], [k for k in ("cell", "backend") if k in keys]
    cats = [k for k in keys if k not in series and k not in facets]
    # more categories than labels fit side by side: panels by the slowest-varying key, as the sweep nests them
    while len(cats) > 1 and _most_categories(ok, facets, cats) > MAX_CATEGORIES:
        if len(ok[[*facets, cats[0]]].drop_duplicates()) > draw.MAX_PANELS:
            break
        facets, cats = [*facets, cats[0]], cats[1:]
    ordered = order_rows(ok, first=df)
    groups = _facet_groups(ordered, facets)
    categories = ordered[cats].drop_duplicates() if cats else pd.DataFrame(index=[0])
    names = [category(r, cats) for _, r in categories.iterrows()]
    fig, axes = draw.panels(len(groups), width=max(5.0, 0.75 * len(names) + 1.5), across=1 if len(names) > 6 else 3)
    styles = draw.Styles()
    n_series = max(1, len(ok[series].drop_duplicates()))
    for ax, (facet, g) in zip(axes, groups, strict=True):
        for j, (_, s) in enumerate(ordered[series].drop_duplicates().iterrows()):
            mine = g[(g[series] == s[series]).all(axis=1)]
            if mine.empty:
                continue
            label = draw.label_of(s, series)
            pos = [names.index(category(r, cats)) for _, r in mine.iterrows()]
            xs = np.asarray(pos, float) + (j - (n_series - 1) / 2) * 0.8 / n_series
            ys = mine["time_median_ms"].to_numpy(dtype=float)
            yerr = mine["time_iqr_ms"].to_numpy(dtype=float) / 2
            ax.errorbar(xs, ys, yerr=yerr, capsize=3, linestyle="none", label=label,
                        **{k: v for k, v in styles(label).items() if k != "linestyle"})  # fmt: skip
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize="small")
        ax.set_xlim(-0.6, len(names) - 0.4)
        draw.value_axis(ax, "y", _with_spread(ok, "time_median_ms"))
        ax.set_ylabel("median time per call (ms)")
        ax.set_title(facet, fontsize="medium")
    context = "; ".join(filter(None, [_context(ok, {*keys}), dropped]))
    title = "Time per call by structure (median; bars: IQR)" + (f"\n{context}" if context else "")
    return draw.finish(fig, axes, styles, out, "time_by_structure.png", title)


def saturation_vs_init(df: pd.DataFrame, out: Path, reference: str | None) -> Path | None:
    """Saturated share of hidden values against init_gain, one style per init (panels by width when many)."""
    ok = reference_rows(ok_rows(df), reference)
    ok, dropped = finite(ok[ok["h_saturation_frac"].notna()], ["h_saturation_frac", "init_gain"])
    if ok.empty or not (ok["init"].nunique() > 1 or ok["init_gain"].nunique() > 1):
        return None
    series = _series_keys(ok, {"init_gain", "backend", "seed"})
    series = [k for k in series if k in minimal_keys(ok, series, ["h_saturation_frac"]) or k in ("init", SOURCE)]
    facets = _by_sweep(ok, series) or draw.choose_facets(ok, series, preferred=("hidden_size", "cell"))
    series = [k for k in series if k not in facets]
    groups = _facet_groups(order_rows(ok, first=df), facets)
    fig, axes = draw.panels(len(groups))
    styles = draw.Styles()
    for ax, (facet, g) in zip(axes, groups, strict=True):
        for _, s in g.groupby(series, sort=False, dropna=False) if series else [((), g)]:
            line = s.groupby("init_gain")["h_saturation_frac"].mean().sort_index()
            label = draw.label_of(s.iloc[0], series)
            ax.plot(line.index.to_numpy(dtype=float), line.to_numpy(dtype=float), label=label, **styles(label))
        if ok["init_gain"].nunique() > 6:  # many gains: round ticks on a linear axis, not each label
            _gain_axis(ax, ok["init_gain"])
        else:
            draw.size_ticks(ax, ok["init_gain"])
        ax.set(xlabel="init_gain (multiplier of the init's scale)", ylabel="share of |h| > 0.99", ylim=(-0.03, 1.03))
        ax.set_title(facet, fontsize="medium")
    context = "; ".join(filter(None, [_context(ok, {*series, *facets, "init_gain"}), dropped]))
    title = "Hidden-state saturation against initialisation" + (f"\n{context}" if context else "")
    return draw.finish(fig, axes, styles, out, "saturation_vs_init.png", title)


def _signature(s: pd.DataFrame, value: str) -> tuple:
    """A trajectory to 4 significant digits: float32 and float64 runs of one config agree that far."""
    s = s.sort_values("timestep")
    return tuple(s["timestep"].astype(int)) + tuple(np.format_float_scientific(v, 3) for v in s[value].to_numpy(float))


def merged_label(group: pd.DataFrame, keys: list[str], panel: pd.DataFrame) -> str:
    """A label for jobs whose lines coincide: each key's values joined by '/', a key left out when the
    group holds every value the panel has (the line does not depend on it)."""
    parts = []
    for k in keys:
        mine, every = pd.unique(group[k].dropna()), pd.unique(panel[k].dropna())
        if len(every) <= 1 or (len(mine) == len(every) and len(every) > 1 and len(group) > 1):
            continue
        values = "/".join(draw.text(v) for v in mine)
        parts.append(values if k in ("cell", "backend", "source") else f"{k}={values}")
    if parts:
        return ", ".join(parts)
    # no key tells this line apart: say how many of the panel's runs it stands for, never "every configuration",
    # which a panel showing a subset (one layer, one cell, a thinned range) would make untrue
    n, of = len(group), len(panel)
    if of == 1:
        return "this panel's one run"
    return f"all {of} runs in this panel" if n == of else f"{n} of the {of} runs in this panel"


def state_norm(res: Results, out: Path) -> Path | None:
    """||h_t|| over timesteps: a panel per layer and direction, one line per distinct trajectory.

    steps.csv comes from the float64 reference, so backends of one config (and a layer shared by
    deeper or bidirectional nets) draw the same line: it is drawn once, its label naming what shares it.
    """
    steps, df = res.side(schema.STEPS), ok_rows(res.table)
    if steps is None or steps.empty or df.empty or not join_keys(df, steps):
        return None
    join = join_keys(df, steps)
    keys = [k for k in varying(df) if k != "backend"]
    keys = drop_determined(df, keys) if keys else keys  # input_size = hidden_size, relu by rnn: named once
    steps, dropped = finite(steps[steps["h_norm"].notna()], ["h_norm"])
    data = steps.merge(df[list(dict.fromkeys([*join, *keys]))].drop_duplicates(join), on=join)  # source: in both
    parts = [c for c in ("layer", "direction") if data[c].nunique() > 1]
    data, keys, join, averaged = _mean_over_seeds(data, join, keys)
    # panels by a category (cell, backend); a numeric key (a gain, a size) is thinned instead, below
    categories = [k for k in keys if not pd.api.types.is_numeric_dtype(data[k])]
    facets = parts if parts else draw.choose_facets(data.drop_duplicates(join), keys, candidates=categories)
    keys = [k for k in keys if k not in facets]
    data, thinned = _thinned(data, join, facets, keys)
    groups = _facet_groups(order_rows(data, [*facets, *keys], first=df), facets)
    fig, axes = draw.panels(len(groups), across=2 if parts else 3)
    styles = draw.Styles()
    for ax, (facet, g) in zip(axes, groups, strict=True):
        lines: dict[tuple, list] = {}
        for _, s in g.groupby(join, sort=False):
            lines.setdefault(_signature(s, "h_norm"), []).append(s)
        panel = g.drop_duplicates(join)
        for sig_runs in lines.values():
            jobs = pd.concat([r.iloc[:1] for r in sig_runs])
            label = merged_label(jobs, keys, panel)
            s = sig_runs[0].sort_values("timestep")
            ax.plot(s["timestep"].to_numpy(float), s["h_norm"].to_numpy(float), label=label, markersize=3,
                    **styles(label))  # fmt: skip
        values = g["h_norm"].to_numpy(float)
        positive = values[values > 0]
        if len(positive) and positive.max() / positive.min() > 100:  # exploding or vanishing: only log shows both
            draw.log_axis(ax, "y", positive)
        ax.xaxis.set_major_locator(draw.MaxNLocator(nbins=draw.MAX_TICKS - 2, integer=True))  # whole steps
        ax.set(xlabel="timestep", ylabel="||h_t|| (mean L2 norm over the batch)")
        ax.set_title(facet.replace("layer=", "layer ").replace("direction=", ""), fontsize="medium")
    context = "; ".join(filter(None, [averaged, thinned, _context(df, {*keys, *facets, *varying(df)}), dropped]))
    title = "Hidden-state norm over time (float64 reference; each distinct trajectory drawn once)"
    return draw.finish(fig, axes, styles, out, "state_norm.png", title + (f"\n{context}" if context else ""),
                       per_panel=True)  # fmt: skip


def _mean_over_seeds(data: pd.DataFrame, join: list[str], keys: list[str]):
    """Seeds are replicates: past MAX_SERIES trajectories, draw their mean rather than a line per seed.

    Returns the data, the keys left, the join columns, and what was done in words ('' for nothing).
    """
    if "seed" not in keys or len(data.drop_duplicates(join)[keys].drop_duplicates()) <= draw.MAX_SERIES:
        return data, keys, join, ""
    keys = [k for k in keys if k != "seed"]
    data = data.groupby([*keys, "layer", "direction", "timestep"], dropna=False, sort=False)["h_norm"].mean()
    data = data.reset_index()
    data["job_num"] = data.groupby(keys, dropna=False, sort=False).ngroup() if keys else 0
    return data, keys, ["job_num"], "mean over seeds"


def _thinned(data: pd.DataFrame, join: list[str], facets: list[str], keys: list[str]):
    """Still past MAX_SERIES lines in a panel: a numeric key's values thinned to a few spread over its range."""
    runs = data.drop_duplicates(join)
    groups = runs.groupby(facets, dropna=False) if facets else [(None, runs)]
    most = max(len(g[keys].drop_duplicates()) for _, g in groups) if keys else 1
    keep_n = draw.MAX_SERIES // 2
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(data[k]) and data[k].nunique() > keep_n]
    if most <= draw.MAX_SERIES or not numeric:
        return data, ""
    key = max(numeric, key=lambda k: data[k].nunique())
    values = np.sort(data[key].dropna().unique())
    keep = values[np.unique(np.linspace(0, len(values) - 1, keep_n).round().astype(int))]
    return data[data[key].isin(keep)], f"{len(keep)} of {len(values)} {key} values"


def dynamics(res: Results, out: Path, reference: str | None) -> Path | None:
    """Edge of chaos: lyap_max against init_gain (median and the seeds' range) and saturation beside it, one
    style per cell; below, grad_log_norm against the distance to the end, a panel per cell, a few gains each
    in one colour scale (a gain reads the same in every panel)."""
    df = reference_rows(ok_rows(res.table), reference)
    df = df.assign(**{c: df[c].where(np.isfinite(df[c].astype(float))) for c in ("lyap_max", "h_saturation_frac")})
    gains_vary = df["init_gain"].nunique() > 1
    has_lyap = df["lyap_max"].notna().any() and gains_vary
    has_sat = df["h_saturation_frac"].notna().any() and gains_vary and has_lyap
    grads = _grad_lines(df, res.side(schema.STEPS))
    if not has_lyap and grads is None:
        return None
    series = _series_keys(df, {"init_gain", "seed", "backend"})[:2]
    groups = list(grads.groupby(series, sort=False, dropna=False)) if grads is not None and series else []
    if grads is not None and not groups:
        groups = [((), grads)]
    fig, axes = draw.panels(has_lyap + has_sat + len(groups))
    styles, panels = draw.Styles(), iter(axes)
    if has_lyap:
        _by_gain(next(panels), df, series, styles, "lyap_max", "largest Lyapunov exponent (1/step)",
                 "lyap_max (median over seeds; band: their range)")  # fmt: skip
    if has_sat:
        _by_gain(next(panels), df, series, styles, "h_saturation_frac", "share of |h| > 0.99", "saturation")
    for _, g in groups:
        _grad_panel(next(panels), g, draw.label_of(g.iloc[0], series) if series else "")
    return draw.finish(fig, axes, styles, out, "dynamics.png", "Dynamics against the initialisation's gain",
                       per_panel=True)  # fmt: skip


def _gain_axis(ax, values) -> None:
    """init_gain on a linear axis with a few round ticks (16 gains labelled one by one would overlap)."""
    gains = pd.Series(values).dropna().astype(float)
    ax.set_xlim(gains.min() - 0.05 * np.ptp(gains), gains.max() + 0.05 * np.ptp(gains))
    ax.xaxis.set_major_locator(draw.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel("init_gain")


def _by_gain(ax, df: pd.DataFrame, series: list[str], styles: draw.Styles, column: str, ylabel: str, title: str):
    """``column`` against init_gain, one line per series: the median over seeds, a band over their range."""
    for _, s in df.groupby(series, sort=False, dropna=False) if series else [((), df)]:
        by = s.groupby("init_gain")[column]
        med, lo, hi = (f().sort_index() for f in (by.median, by.min, by.max))
        label = draw.label_of(s.iloc[0], series) if series else column
        style = styles(label)
        x = med.index.to_numpy(dtype=float)
        ax.plot(x, med.to_numpy(dtype=float), label=label, markersize=4, **style)
        ax.fill_between(x, lo.to_numpy(dtype=float), hi.to_numpy(dtype=float), color=style["color"], alpha=0.2,
                        linewidth=0)  # fmt: skip
    if column == "lyap_max":
        ax.axhline(0.0, color="black", linewidth=0.8)
    else:
        ax.set_ylim(-0.03, 1.03)
    _gain_axis(ax, df["init_gain"])
    ax.set(ylabel=ylabel, title=title)


GRAD_GAINS = 4  # lines per gradient-flow panel: a few gains spread over the range swept


def _grad_lines(df: pd.DataFrame, steps: pd.DataFrame | None) -> pd.DataFrame | None:
    """Top layer, forward direction: grad_log_norm with each row's distance to the end, for a few gains."""
    if steps is None or "grad_log_norm" not in steps or steps["grad_log_norm"].isna().all():
        return None
    join = join_keys(df, steps)
    top = steps[np.isfinite(steps["grad_log_norm"].astype(float)) & (steps["direction"].fillna("forward") == "forward")]
    top = top[top["layer"] == top["layer"].max()]
    keys = [k for k in dict.fromkeys([*join, *varying(df), "init_gain", "timesteps"]) if k in df]
    data = top.merge(df[keys], on=join)
    gains = np.sort(data["init_gain"].dropna().unique())
    pick = gains[np.unique(np.linspace(0, len(gains) - 1, min(GRAD_GAINS, len(gains))).round().astype(int))]
    data = data[data["init_gain"].isin(pick)]
    return data.assign(distance=data["timesteps"].astype(float) - 1 - data["timestep"].astype(float))


def _grad_panel(ax, data: pd.DataFrame, name: str) -> None:
    """Mean (over seeds) log ||dL/dh_t|| against the distance to the end, one line per gain, darker = larger."""
    gains = np.sort(data["init_gain"].unique())
    shades = draw.gain_colors(len(gains))
    for gain, color in zip(gains, shades, strict=True):
        line = data[data["init_gain"] == gain].groupby("distance")["grad_log_norm"].mean().sort_index()
        ax.plot(line.index.to_numpy(dtype=float), line.to_numpy(dtype=float), color=color,
                label=f"init_gain={draw.plain(float(gain))}")  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.8)
    title = "gradient flow, top layer" + (f": {name}" if name else "")
    ax.set(xlabel="distance to the end (steps)", ylabel="log ||dL/dh_t|| (mean over seeds)", title=title)


def training_phases(df: pd.DataFrame, out: Path) -> Path | None:
    """Training: each backend's step split into forward, data backward and weight backward (stacked bars),
    the training rows only, a panel per configuration so that a panel's bars are its backends."""
    ok = ok_rows(df)
    ok = ok[(ok["mode"] == "training").fillna(False).astype(bool)] if "mode" in ok else ok
    cols = [c for c in PHASES if ok[c].notna().any()]
    if ok.empty or not cols:
        return None
    ok, dropped = finite(ok, ["time_median_ms"])
    ok = ok.assign(**{c: ok[c].where(np.isfinite(ok[c].astype(float))) for c in cols})
    if ok.empty:
        return None
    keys = [k for k in varying(ok) if k != "backend"]
    facets = keys if len(ok[keys].drop_duplicates()) <= draw.MAX_PANELS else draw.choose_facets(ok, keys)
    groups = _facet_groups(order_rows(ok, first=df), facets)
    fig, axes = draw.panels(len(groups))
    styles = draw.Styles()
    for ax, (facet, g) in zip(axes, groups, strict=True):
        rest = [k for k in keys if k not in facets]
        names = [", ".join(filter(None, [str(r["backend"]), draw.label_of(r, rest) if rest else ""]))
                 for _, r in g.iterrows()]  # fmt: skip
        bottom = np.zeros(len(g))
        for col in cols:
            values = g[col].fillna(0).to_numpy(dtype=float)
            style = styles(PHASES[col])
            ax.bar(range(len(g)), values, bottom=bottom, color=style["color"], label=PHASES[col])
            bottom += values
        ax.plot(range(len(g)), g["time_median_ms"].to_numpy(dtype=float), linestyle="none", marker="_",
                markersize=18, color="black", label="whole step (measured)")  # fmt: skip
        ax.set_xticks(range(len(g)))
        ax.set_xticklabels([n.replace(", ", "\n") for n in names], fontsize="small")
        ax.set(ylabel="median time per step (ms)", title=facet)
    title = (
        "Training step by phase (median)\nthe phases overlap (each backward phase includes the recurrent "
        "adjoint), so the bars stand taller than the measured step" + (f"; {dropped}" if dropped else "")
    )
    return draw.finish(fig, axes, styles, out, "training_phases.png", title)


def labelled(res: Results) -> Results:
    """Several sweeps: each named in legends by its name, with its commit when the sweeps' commits differ."""
    labels = source_labels(res.table)
    if not labels or all(k == v for k, v in labels.items()):
        return res
    sides = {n: t.assign(**{SOURCE: t[SOURCE].map(labels)}) if SOURCE in t else t for n, t in res.sides.items()}
    return Results(res.path, res.table.assign(**{SOURCE: res.table[SOURCE].map(labels)}), sides, res.env)


def make_all(res: Results, out: Path, reference: str | None = None) -> list[Path]:
    """Every plot the data supports, written under ``out``; their paths."""
    res = labelled(res)
    df = res.table
    made = [
        time_vs_size(df, out),
        time_by_structure(df, out),
        gflops_vs_size(df, out),
        training_phases(df, out),
        saturation_vs_init(df, out, reference),
        state_norm(res, out),
        dynamics(res, out, reference),
    ]
    return [p for p in made if p is not None]
