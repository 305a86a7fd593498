"""What a person reads at the end of a run: a table that fits a screen, and every failure in a line.

Rows come in the sweep's own order (its keys, slowest-varying first: the order of results.csv and of
report.md). Past ``SHOWN`` rows the table keeps the failures and the rows nearest their parity
tolerance (the largest deviations from the reference), and counts the rest.
"""

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
    "grad_max_abs_err_vs_ref",  # training sweeps: the gradients' parity
    "grad_parity_ok",
    "status",
]
CHECKS = ("parity_ok", "shape_ok", "grad_parity_ok")  # false on an ok row: the job ran but disagrees
SHOWN = 20  # rows and failure lines printed without --all: a screen
DEVIATIONS = (("max_abs_err_vs_ref", "parity_tol"), ("grad_max_abs_err_vs_ref", "grad_parity_tol"))


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


def deviation(df: pd.DataFrame) -> pd.Series:
    """Each row's largest error as a share of its tolerance (forward or gradient parity); 0 where unchecked."""
    share = pd.Series(0.0, index=df.index)
    for err, tol in DEVIATIONS:
        if err in df and tol in df:
            ratio = pd.to_numeric(df[err], errors="coerce") / pd.to_numeric(df[tol], errors="coerce")
            share = share.combine(ratio.astype("float64").fillna(0.0), max)
    return share


def shown_rows(df: pd.DataFrame, failed: pd.Series, limit: int | None) -> pd.Series:
    """Which rows fit: every failure first, then the largest deviations; all of them without ``limit``."""
    if limit is None or len(df) <= limit:
        return pd.Series(True, index=df.index)
    rank = pd.DataFrame({"failed": failed.astype(bool), "dev": deviation(df), "at": range(len(df))}, index=df.index)
    keep = rank.sort_values(["failed", "dev", "at"], ascending=[False, False, True], kind="stable").index[:limit]
    return pd.Series(df.index.isin(keep), index=df.index)


def table(df: pd.DataFrame, limit: int | None = SHOWN, hint: str = "rnnexp report DIR --all prints every row") -> str:
    """The summary: varying config keys (cell and backend always), results, then each failure in a line.

    Past ``limit`` rows (None: no limit), the failures and the largest deviations, and a count of the rest.
    """
    if df.empty:
        return "(no rows)"
    df = _declared(df)
    keys = varying(df, keep=("cell", "backend"))
    df = order_rows(df, keys)
    cols = [*keys, *(c for c in RESULT_COLUMNS if c in df and df[c].notna().any())]
    failed = failed_mask(df)
    shown = shown_rows(df, failed, limit)
    lines = [df.loc[shown, cols].map(_cell).rename(columns=terminal_text).to_string(index=False)]
    if not shown.all():
        lines.append(f"... {int((~shown).sum())} more rows of {len(df)} (failures and the largest deviations from "
                     f"the reference are shown; {hint})")  # fmt: skip
    problems = [_failure(i, row) for i, row in df[failed].iterrows()]
    lines += problems if limit is None or len(problems) <= limit else problems[:limit]
    if limit is not None and len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more failures ({hint})")
    return "\n".join(lines)


def _failure(i, row) -> str:
    job = row.get("job_num")
    job = i if job is None or job is pd.NA else _cell(job)  # the job's own number: rows may be missing
    if row.get("status") != "ok":
        return f"error in job {job}: {_cell(row.get('error'))}"
    shown = [*CHECKS, "max_abs_err_vs_ref", "grad_max_abs_err_vs_ref"]
    checks = " ".join(f"{c}={_cell(row.get(c))}" for c in shown if _cell(row.get(c)))
    return f"job {job} disagrees with the reference: {checks}"


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
