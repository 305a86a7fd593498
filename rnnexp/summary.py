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
    "parity_ok",
    "status",
]
_CONFIG_COLUMNS = [
    "cell", "backend", "layers", "bidirectional", "hidden_size", "input_size", "timesteps",
    "batch_size", "batch_first", "nonlinearity", "bias", "proj_size", "dtype", "device",
    "init", "init_gain", "input_dist", "threads", "seed",
]  # fmt: skip


def count_failed(table: pd.DataFrame) -> int:
    """Jobs that failed, or that ran but disagree with the reference or the shape formulas."""
    if table.empty or "status" not in table:
        return 0
    failed = table["status"] != "ok"
    for check in ("parity_ok", "shape_ok"):
        if check in table:
            failed |= (table["status"] == "ok") & (table[check].astype(str) != "True")
    return int(failed.sum())


def table(df: pd.DataFrame) -> str:
    """The summary: varying config columns (cell and backend always), results, then any errors."""
    if df.empty:
        return "(no rows)"
    cfg_cols = [c for c in _CONFIG_COLUMNS if c in df and (c in ("cell", "backend") or df[c].nunique() > 1)]
    cols = cfg_cols + [c for c in _RESULT_COLUMNS if c in df]
    text = df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    lines = []
    for i, row in df.iterrows():
        job = row.get("job_num", i)  # the job's own number: rows may be missing from a crashed sweep
        if row.get("status") != "ok":
            lines.append(f"error in job {job}: {row.get('error')}")
        elif any(str(row.get(c, True)) != "True" for c in ("parity_ok", "shape_ok")):
            checks = " ".join(f"{c}={row.get(c)}" for c in ("parity_ok", "shape_ok", "max_abs_err_vs_ref"))
            lines.append(f"job {job} disagrees with the reference: {checks}")
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
