"""What a review plot puts on its axes, decided from the table alone (no drawing library): the rows that
can be drawn, the size on the x axis, whether an axis needs a log scale, and what a plot must leave out.

Shared by the PNG plots (matplotlib) and the page's interactive ones (plotly), so both show the same thing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SIZES = ("hidden_size", "batch_size", "timesteps", "input_size")
UNITS = {"hidden_size": "units", "input_size": "features", "batch_size": "sequences", "timesteps": "steps"}
LOG_SPAN = 10.0  # values spanning more than this factor get a log axis: on a linear one the small ones vanish
MAX_TICKS = 12  # tick labels per axis a reader can take in without them touching


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok").fillna(False).astype(bool)]


def determined(df: pd.DataFrame, by: list[str], key: str) -> bool:
    """Whether ``key`` takes one value per combination of ``by`` (input_size by hidden_size, say)."""
    if not by:
        return df[key].nunique(dropna=False) <= 1
    return bool((df.groupby(by, dropna=False)[key].nunique(dropna=False) <= 1).all())


def x_of(ok: pd.DataFrame) -> str | None:
    """The size a plot's x axis shows: one size that fixes the rest, else the modelled work when several
    sizes vary together (DeepBench's kernels); None when no size varies (a categorical chart)."""
    sizes = [s for s in SIZES if s in ok and ok[s].nunique() > 1]
    for s in sizes:  # one size that fixes the rest (input_size = hidden_size in backend_shootout)
        if all(determined(ok, [s], other) for other in sizes):
            return s
    if sizes and "flops" in ok and ok["flops"].notna().all():
        return "flops"
    return None


def wants_log(values) -> bool:
    """A log axis when the positive values span more than LOG_SPAN times."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return len(v) > 1 and v.max() / v.min() > LOG_SPAN


def finite(df: pd.DataFrame, columns: list[str], log: bool = False) -> tuple[pd.DataFrame, str]:
    """Rows whose ``columns`` are finite numbers (and positive, for a log axis), and a note naming what was
    left out ('' when nothing was): an inf or nan time cannot be placed on an axis."""
    values = df[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    keep = np.isfinite(values).all(axis=1)
    if log:
        keep &= (values > 0).all(axis=1)
    dropped = int((~keep & df[columns].notna().all(axis=1)).sum())
    what = "a non-finite" + (" or non-positive" if log else "")
    where = " (a log axis)" if log else ""
    note = f"{dropped} row{'s' if dropped != 1 else ''} with {what} {' or '.join(columns)} left out{where}"
    return df[keep], note if dropped else ""


def source_labels(df: pd.DataFrame, commits: dict[str, str] | None = None) -> dict[str, str]:
    """Each input's name in legends: its name, with its commit when the inputs ran different commits.

    A sweep's commit is its rows' ``git_commit`` (else ``commits[name]``, from its env.json).
    """
    if "source" not in df:
        return {}
    names = list(pd.unique(df["source"].dropna()))
    commit = {}
    for n in names:
        seen = df.loc[df["source"] == n, "git_commit"].dropna().astype(str) if "git_commit" in df else pd.Series([])
        seen = seen[seen != ""].unique()
        commit[n] = seen[0] if len(seen) == 1 else (commits or {}).get(n, "") if not len(seen) else "several"
    differ = len({c for c in commit.values() if c}) > 1
    return {n: f"{n} ({commit[n][:9]})" if differ and commit[n] else n for n in names}
