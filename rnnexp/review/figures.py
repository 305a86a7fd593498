"""The page's interactive plots as plotly figure specs (plain dicts for ``Plotly.newPlot``).

Panels by cell and backend on shared axes; one series per sweep when several are reviewed together, else
one per configuration that the x axis does not show (up to MAX_SERIES: past that, points whose hover names
each configuration, with a note). Every text plotly shows is escaped: plotly reads labels as HTML.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnnexp.review import axes
from rnnexp.review.keys import SOURCE, order_rows, text, varying

MAX_SERIES = 8  # as the PNGs: past this, colours and markers stop being told apart
DENSE = 30  # as the PNGs: points in a series past which it gets no error bars
ACROSS = 3  # panels per row
PANEL_HEIGHT = 330
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")  # fmt: skip
SYMBOLS = ("circle", "square", "triangle-up", "diamond", "triangle-down", "cross", "x", "star")
FACETS = ("cell", "backend")


@dataclass
class Chart:
    """One interactive figure: its heading, what it left out or merged ('' for nothing), and the spec."""

    title: str
    note: str
    spec: dict


def esc(value) -> str:
    return html.escape(text(value))


def describe(row: pd.Series, keys: list[str]) -> str:
    """A row's configuration for a hover box: 'cell=lstm, hidden_size=64, job 12' (escaped)."""
    parts = [f"{k}={text(row[k])}" for k in keys if k in row]
    if "job_num" in row and not pd.isna(row["job_num"]):
        parts.append(f"job {text(row['job_num'])}")
    return html.escape(", ".join(parts))


def _grid(n: int) -> list[tuple[list[float], list[float]]]:
    """Each panel's (x domain, y domain), ACROSS to a row, top to bottom."""
    cols = min(n, ACROSS)
    rows = math.ceil(n / cols)
    gap_x, gap_y = 0.07, 0.3 / rows  # room for the x title below a panel and the next panel's name
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y1 = c * (width + gap_x), 1 - r * (height + gap_y)
        out.append(([x0, x0 + width], [y1 - height, y1]))
    return out


def _series(ok: pd.DataFrame, x: str | None, labels: dict[str, str]) -> tuple[list[str], str]:
    """The keys that split a panel into series, and a note when there are too many to draw as lines."""
    if SOURCE in ok and ok[SOURCE].nunique() > 1:
        return [SOURCE], ""
    skip = {x, *FACETS, "seed", *(s for s in axes.SIZES if x in ok and axes.determined(ok, [x], s))}
    keys = [k for k in varying(ok) if k not in skip]
    facets = _facets(ok)
    panels = ok.groupby(facets, dropna=False) if facets else [(None, ok)]
    most = max(len(g[keys].drop_duplicates()) for _, g in panels) if keys else 1
    if most <= MAX_SERIES:
        return keys, ""
    return [], f"{most} configurations per panel are too many to tell apart: drawn as points, the hover names each"


def _facets(ok: pd.DataFrame) -> list[str]:
    return [f for f in FACETS if f in ok and ok[f].nunique() > 1]


def chart(df: pd.DataFrame, y: str, ytitle: str, title: str, labels: dict[str, str], *, x: str | None = None,
          err: str | None = None, line_at: float | None = None, log: bool | None = None) -> Chart | None:  # fmt: skip
    """``y`` against ``x`` (default: the size that varies; else a category per configuration), a panel per
    cell x backend that varies; None when no row has a finite ``y``."""
    ok = axes.ok_rows(df)
    if y not in ok or ok[y].isna().all():
        return None
    x = x or axes.x_of(ok)
    log_y = axes.wants_log(ok[y]) if log is None else log
    log_x = x is not None and axes.wants_log(ok[x])
    notes = []
    ok, dropped = axes.finite(ok, [y, *([x] if x else [])], log=log_y)
    if ok.empty:
        return None
    notes.append(dropped)
    keys = varying(ok)
    facets = _facets(ok)
    series, merged = _series(ok, x, labels)
    notes.append(merged)
    ordered = order_rows(ok, first=df)
    if x is None:  # no size varies: each configuration (but its panel and series) is a category
        rest = [k for k in keys if k not in {*facets, *series, SOURCE}]
        ordered = ordered.assign(_x=[", ".join(f"{k}={text(r[k])}" for k in rest) or "all" for _, r in
                                     ordered.iterrows()])  # fmt: skip
    xcol = x or "_x"
    groups = list(ordered.groupby(facets, sort=False, dropna=False)) if facets else [((), ordered)]
    grid = _grid(len(groups))
    xticks = _ticks(ordered[x], log_x) if x else {"nticks": axes.MAX_TICKS}
    layout: dict = {"height": PANEL_HEIGHT * math.ceil(len(groups) / ACROSS) + 120, "hovermode": "closest",
                    "margin": {"t": 40, "l": 70, "r": 20, "b": 60}, "annotations": [], "legend": {"title": {}},
                    "showlegend": True}  # fmt: skip
    traces, legend_seen, styles, bars = [], set(), {}, False
    for i, ((facet, g), (xdom, ydom)) in enumerate(zip(groups, grid, strict=True)):
        n = "" if i == 0 else str(i + 1)
        facet = facet if isinstance(facet, tuple) else (facet,)
        name = ", ".join(text(v) for v in facet)
        across = min(len(groups), ACROSS)
        bottom, left = i + across >= len(groups), i % across == 0  # axis titles once per column and row
        layout[f"xaxis{n}"] = {"domain": xdom, "anchor": f"y{n}", "automargin": True, **xticks,
                               "type": "log" if log_x else ("category" if x is None else "linear"),
                               "title": {"text": html.escape(_xtitle(x)) if bottom else ""},
                               **({"matches": "x"} if n else {})}  # fmt: skip
        layout[f"yaxis{n}"] = {"domain": ydom, "anchor": f"x{n}", "automargin": True,
                               **(_log_ticks(ordered[y]) if log_y else {"nticks": axes.MAX_TICKS}),
                               "type": "log" if log_y else "linear",
                               "title": {"text": html.escape(ytitle) if left else ""},
                               **({"matches": "y"} if n else {})}  # fmt: skip
        if name:
            layout["annotations"].append({"text": html.escape(name), "showarrow": False, "xref": "paper",
                                          "yref": "paper", "x": sum(xdom) / 2, "y": ydom[1], "yanchor": "bottom",
                                          "font": {"size": 13}})  # fmt: skip
        parts = g.groupby(series, sort=False, dropna=False) if series else [((), g)]
        for key, s in parts:
            key = key if isinstance(key, tuple) else (key,)
            label = _label(dict(zip(series, key, strict=True)), labels) if series else name
            style = styles.setdefault(label, len(styles))
            s = s.sort_values(xcol, kind="stable") if x else s
            one_per_x = not s[xcol].duplicated().any()
            trace = {
                "type": "scatter",  # SVG: WebGL (scattergl) is missing where a browser has no GPU
                "x": _values(s[xcol]), "y": _values(s[y]), "xaxis": f"x{n}", "yaxis": f"y{n}",
                "mode": "lines+markers" if one_per_x and x and (series or not merged) else "markers",
                "name": html.escape(label), "legendgroup": html.escape(label),
                "showlegend": bool(series) and label not in legend_seen,
                "marker": {"color": COLORS[style % len(COLORS)], "symbol": SYMBOLS[style % len(SYMBOLS)], "size": 7},
                "line": {"color": COLORS[style % len(COLORS)]},
                "hovertext": [describe(r, [*([SOURCE] if SOURCE in keys else []), *(k for k in keys if k != SOURCE)])
                              for _, r in s.iterrows()],
                "hovertemplate": "%{hovertext}<br>" + html.escape(ytitle) + ": %{y:.4g}<extra></extra>",
            }  # fmt: skip
            if err and err in s and s[err].notna().any():
                trace["customdata"] = _values(s[err])
                trace["hovertemplate"] = trace["hovertemplate"].replace("<extra>", " (IQR %{customdata:.3g})<extra>")
                if len(s) <= DENSE:  # bars on hundreds of noisy points bury the lines: the hover has the IQR
                    trace["error_y"] = {"type": "data", "array": _values(s[err] / 2), "thickness": 1}
                    bars = True
            legend_seen.add(label)
            traces.append(trace)
        if line_at is not None:
            layout.setdefault("shapes", []).append({"type": "line", "xref": f"x{n} domain", "yref": f"y{n}",
                                                    "x0": 0, "x1": 1, "y0": line_at, "y1": line_at,
                                                    "line": {"color": "black", "width": 1, "dash": "dot"}})  # fmt: skip
    note = "; ".join(filter(None, notes))
    return Chart(title.replace("(median)", "(median; bars: IQR)") if bars else title, note,
                 {"data": traces, "layout": layout})  # fmt: skip


def _ticks(values: pd.Series, log: bool) -> dict:
    """Few sizes: a tick at each size run (8, 64, 256); many: round ticks, at most MAX_TICKS."""
    run = np.sort(pd.to_numeric(values, errors="coerce").dropna().unique())
    if len(run) <= axes.MAX_TICKS:
        return {"tickmode": "array", "tickvals": [float(v) for v in run], "ticktext": [text(v) for v in run]}
    return _log_ticks(values) if log else {"nticks": axes.MAX_TICKS}


def _log_ticks(values: pd.Series) -> dict:
    """Plotly's log axis labels every digit of a short range, and they touch: 1-2-5 per decade up to a few
    decades, powers of ten past that."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    decades = math.log10(v.max() / v.min()) if len(v) else 0
    return {"dtick": "D2" if decades <= 3 else 1 if decades <= 11 else math.ceil(decades / 10)}


def _xtitle(x: str | None) -> str:
    if x is None:
        return "configuration"
    if x == "flops":
        return "modelled work per forward (FLOP)"
    return f"{x} ({axes.UNITS[x]})" if x in axes.UNITS else x


def _label(values: dict, labels: dict[str, str]) -> str:
    if list(values) == [SOURCE]:
        return labels.get(values[SOURCE], text(values[SOURCE]))
    return ", ".join(text(v) if k in FACETS else f"{k}={text(v)}" for k, v in values.items()) or "every configuration"


def _values(col: pd.Series) -> list:
    """JSON-ready values: numbers as floats (nan as null), the rest as text."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return [None if not np.isfinite(v) else float(v) for v in col.to_numpy(dtype=float, na_value=np.nan)]
    return [text(v) for v in col]


def make_all(df: pd.DataFrame, labels: dict[str, str]) -> list[Chart]:
    """Every interactive plot the table supports: time, throughput, forward and gradient parity, saturation."""
    ok = axes.ok_rows(df)
    if len(ok) < 2:  # one point compares with nothing: the table says it all
        return []
    training = set(ok["mode"].dropna()) == {"training"} if "mode" in ok else False
    what = "time per training step" if training else "time per call"
    made = [
        chart(df, "time_median_ms", f"median {what} (ms)", f"{what.capitalize()} (median)", labels,
              err="time_iqr_ms"),
        chart(df, "gflops", "throughput (GFLOP/s)", "Throughput", labels),
    ]  # fmt: skip
    for what, err, tol in (("Forward", "max_abs_err_vs_ref", "parity_tol"),
                           ("Gradient", "grad_max_abs_err_vs_ref", "grad_parity_tol")):  # fmt: skip
        if err in ok and ok[err].notna().any() and tol in ok and ok[tol].notna().any():
            frac = df.assign(_frac=df[err] / df[tol])
            made.append(chart(frac, "_frac", f"{err} / {tol}", f"{what} parity: error over its tolerance "
                              "(above the dotted line fails)", labels, line_at=1.0, log=True))  # fmt: skip
    if "init_gain" in ok and ok["init_gain"].nunique() > 1:
        made.append(chart(df, "h_saturation_frac", "share of |h| > 0.99", "Hidden-state saturation against the "
                          "init's gain", labels, x="init_gain"))  # fmt: skip
    return [c for c in made if c is not None]
