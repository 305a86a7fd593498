"""What a person reads at the end of a run: a compact table and a count of failures."""

from __future__ import annotations

from typing import Any

import pandas as pd

# Always shown when present; configuration columns are shown only where they vary.
_RESULT_COLUMNS = [
    "output_shape",
    "h_n_shape",
    "shape_ok",
    "time_median_ms",
    "time_iqr_ms",
    "h_saturation_frac",
    "max_abs_err_vs_ref",
    "status",
]
_CONFIG_COLUMNS = [
    "cell", "backend", "layers", "bidirectional", "hidden_size", "input_size", "timesteps",
    "batch_size", "batch_first", "nonlinearity", "bias", "proj_size", "dtype", "device",
    "init", "init_gain", "input_dist", "threads", "seed",
]  # fmt: skip


def count_failed(table: pd.DataFrame) -> int:
    if table.empty or "status" not in table:
        return 0
    return int((table["status"] != "ok").sum())


def table(df: pd.DataFrame) -> str:
    """The summary: varying config columns (cell and backend always), results, then any errors."""
    if df.empty:
        return "(no rows)"
    cfg_cols = [c for c in _CONFIG_COLUMNS if c in df and (c in ("cell", "backend") or df[c].nunique() > 1)]
    cols = cfg_cols + [c for c in _RESULT_COLUMNS if c in df]
    text = df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    errors = df[df["status"] != "ok"] if "status" in df else df.iloc[0:0]
    lines = [f"error in job {i}: {e}" for i, e in zip(errors.index, errors.get("error", []), strict=False)]
    return "\n".join([text, *lines])


def one_line(row: dict[str, Any]) -> str:
    """A job's outcome in a line, for progress logs."""
    head = f"{row.get('cell')}/{row.get('backend')} layers={row.get('layers')} bidirectional={row.get('bidirectional')}"
    if row.get("status") != "ok":
        return f"{head}: error: {row.get('error')}"
    return (
        f"{head}: output {row['output_shape']} h_n {row['h_n_shape']} "
        f"{row['time_median_ms']:.4g} ms (IQR {row['time_iqr_ms']:.2g}) err {row['max_abs_err_vs_ref']:.2g}"
    )
