"""What a person reads at the end of a run: a compact table and a count of failures."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rnnexp import schema
from rnnexp.review.escape import terminal_text
from rnnexp.review.keys import order_rows, varying

# Always shown when present; configuration keys are shown only where they vary (cell and backend always).
RESULT_COLUMNS = [
    "output_shape",
    "h_n_shape",
    "shape_ok",
    "time_median_ms",
    "time_iqr_ms",
    "noisy",
    "h_saturation_frac",
    "max_abs_err_vs_ref",
    "parity_ok",
    "status",
]
CHECKS = ("parity_ok", "shape_ok", "grad_parity_ok")  # false on an ok row: the job ran but disagrees


def _declared(df: pd.DataFrame) -> pd.DataFrame:
    return schema.coerce(df)  # rows straight from a job, or a table as read: the same dtypes


def failed_mask(df: pd.DataFrame) -> pd.Series:
    """Rows that failed: an error, or a check (parity, shape) that came out false."""
    df = _declared(df)
    if "status" not in df:
        return pd.Series(False, index=df.index)
    ok = (df["status"] == "ok").fillna(False).astype(bool)
    bad = ~ok
    for check in (c for c in CHECKS if c in df):
        bad |= ok & (df[check] == False).fillna(False).astype(bool)  # noqa: E712 (NA: not checked, not failed)
    return bad


def count_failed(table: pd.DataFrame) -> int:
    """Jobs that failed, or that ran but disagree with the reference or the shape formulas."""
    return 0 if table.empty else int(failed_mask(table).sum())


def _cell(value) -> str:
    """A value as one inert terminal cell: 4 significant digits for floats, controls shown escaped."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else terminal_text(value)


def table(df: pd.DataFrame) -> str:
    """The summary: varying config keys (cell and backend always), results, then each failure in a line."""
    if df.empty:
        return "(no rows)"
    df = order_rows(_declared(df))
    cols = [*varying(df, keep=("cell", "backend")), *(c for c in RESULT_COLUMNS if c in df and df[c].notna().any())]
    text = df[cols].map(_cell).rename(columns=terminal_text).to_string(index=False)
    lines = [text]
    failed = failed_mask(df)
    for i, row in df[failed].iterrows():
        job = row.get("job_num")
        job = i if job is None or job is pd.NA else _cell(job)  # the job's own number: rows may be missing
        if row.get("status") != "ok":
            lines.append(f"error in job {job}: {_cell(row.get('error'))}")
        else:
            checks = " ".join(f"{c}={_cell(row.get(c))}" for c in (*CHECKS[:2], "max_abs_err_vs_ref"))
            lines.append(f"job {job} disagrees with the reference: {checks}")
    return "\n".join(lines)


def one_line(row: dict[str, Any]) -> str:
    """A job's outcome in a line, for progress logs."""
    shown = {k: terminal_text(row.get(k)) for k in ("cell", "backend", "layers", "bidirectional", "error")}
    head = f"{shown['cell']}/{shown['backend']} layers={shown['layers']} bidirectional={shown['bidirectional']}"
    if row.get("status") != "ok":
        return f"{head}: error: {shown['error']}"
    median, iqr, err = (row.get(c) for c in ("time_median_ms", "time_iqr_ms", "max_abs_err_vs_ref"))
    return (
        f"{head}: output {terminal_text(row.get('output_shape'))} h_n {terminal_text(row.get('h_n_shape'))} "
        f"{_cell(median)} ms (IQR {_cell(iqr)}) err {_cell(err)}"
    )
