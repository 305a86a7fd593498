"""Which configuration keys tell rows apart, and the one row order every table and legend uses."""

from __future__ import annotations

import pandas as pd

from rnnexp import schema

SOURCE = "source"
ALWAYS = ("cell", SOURCE)  # never dropped from a table: its index, and which input a row came from


def key_columns(df: pd.DataFrame) -> list[str]:
    """The configuration keys in the table, in declared order, then ``source`` (several inputs)."""
    return [c for c in [*schema.config_keys(), SOURCE] if c in df.columns]


def by_nesting(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """``keys`` from the slowest-varying to the fastest in job order: the sweep's own nesting.

    Hydra's sweeps vary the first parameter slowest; counting value changes down the rows (in job
    order) recovers that, so every table reads in the order the sweep ran. Ties keep declared order.
    """
    rows = df.sort_values("job_num", kind="stable") if "job_num" in df and df["job_num"].notna().all() else df
    changes = {k: int((rows[k].astype("string").fillna("") != rows[k].astype("string").fillna("").shift()).sum())
               for k in keys}  # fmt: skip
    return sorted(keys, key=lambda k: changes[k])


def varying(df: pd.DataFrame, keep: tuple[str, ...] = ()) -> list[str]:
    """Keys whose values differ between rows (missing counts as a value), plus ``keep``, slowest-varying first."""
    found = [c for c in key_columns(df) if df[c].nunique(dropna=False) > 1]
    return [*(c for c in key_columns(df) if c in keep and c not in found), *by_nesting(df, found)]


def _rank(values: pd.Series) -> pd.Series:
    """Numbers and booleans in ascending order; text in order of first appearance (the sweep's order)."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    order = {v: i for i, v in enumerate(pd.unique(values.dropna()))}
    return values.map(order).astype("float64")


def order_rows(df: pd.DataFrame, keys: list[str] | None = None, first: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows sorted by ``keys`` in declared order; text values in the order ``first`` (default ``df``) shows them.

    Passing the whole results table as ``first`` gives every derived table the same row order.
    """
    keys = [k for k in (key_columns(df) if keys is None else keys) if k in df.columns]
    if not keys or df.empty:
        return df.reset_index(drop=True)
    ref = df if first is None else first
    if "job_num" in ref and ref["job_num"].notna().all():
        ref = ref.sort_values("job_num", kind="stable")  # text values in the order the jobs ran
    ranks = {}
    for k in keys:
        if k in ref.columns and not pd.api.types.is_numeric_dtype(ref[k]) and not pd.api.types.is_bool_dtype(ref[k]):
            seen = pd.concat([ref[k], df[k]]).dropna().astype("string")  # text cells order like their values
            order = {v: i for i, v in enumerate(pd.unique(seen))}
            ranks[k] = df[k].astype("string").map(order).astype("float64")
        elif k in ref.columns and df[k].dtype != ref[k].dtype:
            ranks[k] = pd.to_numeric(df[k], errors="coerce").astype("float64")
        else:
            ranks[k] = _rank(df[k])
    ordered = pd.DataFrame(ranks, index=df.index).sort_values(keys, kind="stable", na_position="last")
    return df.loc[ordered.index].reset_index(drop=True)


def minimal_keys(df: pd.DataFrame, keys: list[str], values: list[str]) -> list[str]:
    """The fewest of ``keys`` (dropping from the last) that still determine ``values`` row by row.

    A key the values do not depend on is dropped, so a table whose shapes depend on hidden_size
    alone shows one row per hidden_size rather than one per (init, gain, hidden_size).
    """
    keep = list(keys)
    if not values:
        return keep
    cells = df[values].astype("string").fillna("")
    for k in reversed(keys):
        if k in ALWAYS:
            continue
        trial = [c for c in keep if c != k]
        grouped = cells.groupby([df[c].astype("string").fillna("") for c in trial], sort=False) if trial else None
        if grouped is None:
            determined = len(cells.drop_duplicates()) <= 1
        else:
            determined = bool((grouped.nunique(dropna=False) <= 1).all().all())
        if determined:
            keep = trial
    return keep


def text(value) -> str:
    """A value as a table cell: '' for missing, 0.5 not 0.500000, 8 not 8.0."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
