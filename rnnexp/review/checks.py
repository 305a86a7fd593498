"""Whether a run's tables agree with themselves: one row per job, side tables that join, samples that are the row's.

Tables travel (CI artifacts, a colleague's copy), so review checks them before it trusts them.
Each check returns phrases naming what is wrong; the caller decides whether that refuses the input
(a duplicated job, samples contradicting their row) or is said beside the result (orphaned rows).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rnnexp import schema

# A row's median time is 1e3 * median(block_time_s / block_size) of its samples (measure.Measurement),
# both written at full precision (repr), so the two agree to a few ulps. Anything past this is another
# measurement: samples copied from another sweep, or shifted to another job.
MEDIAN_RTOL = 1e-9
SHOWN = 5  # job numbers named in a phrase before "and N more"


def job_list(values) -> str:
    values = [int(v) for v in values]
    more = f" and {len(values) - SHOWN} more" if len(values) > SHOWN else ""
    return ", ".join(map(str, values[:SHOWN])) + more


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["status"] == "ok").fillna(False).astype(bool)] if "status" in table else table


def duplicate_jobs(table: pd.DataFrame) -> str | None:
    """A phrase naming the job numbers that have more than one row, or None. Never averaged: refused."""
    nums = table["job_num"].dropna() if "job_num" in table else pd.Series(dtype="Int64")
    repeated = pd.unique(nums[nums.duplicated()])
    if not len(repeated):
        return None
    first = repeated[0]
    rows = table[table["job_num"] == first]
    times = ""
    if "time_median_ms" in rows and rows["time_median_ms"].notna().any():
        times = f" (time_median_ms {', '.join(f'{v:g}' for v in rows['time_median_ms'].dropna())})"
    others = f"; job_num {job_list(repeated[1:])} too" if len(repeated) > 1 else ""
    return f"job_num {int(first)} has {len(rows)} rows{times}{others}: a results table holds one row per job"


def orphaned(table: pd.DataFrame, sides: dict[str, pd.DataFrame]) -> list[str]:
    """Side tables' job numbers that have no row in the results table, one phrase per side table."""
    if "job_num" not in table:
        return []
    known = set(table["job_num"].dropna().astype(int))
    out = []
    for name, side in sides.items():
        if "job_num" not in side:
            continue
        extra = sorted(set(side["job_num"].dropna().astype(int)) - known)
        if extra:
            out.append(f"{name} has rows for job {job_list(extra)}, which {schema.RESULTS} has no row for")
    return out


def _same(a, b) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _per_call_ms(part: pd.DataFrame) -> np.ndarray:
    return 1e3 * (part["block_time_s"] / part["block_size"]).to_numpy(dtype=float)


def _job_mismatch(row: dict, mine: pd.DataFrame, keys: list[str]) -> str | None:
    """How a job's samples contradict its row, or None when they are its own."""
    for key in keys:
        values = mine[key].drop_duplicates()
        if len(values) != 1 or not _same(values.iloc[0], row.get(key)):
            return f"its samples carry {key}={', '.join(map(str, values))}, its row {key}={row.get(key)}"
    for col in (c for c in schema.columns() if c.rule == schema.TIMED):
        value = row.get(col.name)
        if value is None or pd.isna(value):
            continue
        part = next((mine[mine["phase"] == p] for p in col.phases if (mine["phase"] == p).any()), None)
        if part is None:
            return f"its row has {col.name}={value:g} but no samples of phase {' or '.join(col.phases)}"
        phase = part["phase"].iloc[0]
        blocks = row.get("n_blocks")
        if col.name == "time_median_ms" and blocks is not None and not pd.isna(blocks) and int(blocks) != len(part):
            return f"it has {len(part)} {phase} samples, its row's n_blocks is {int(blocks)}"
        median = float(np.median(_per_call_ms(part)))
        if not math.isclose(median, float(value), rel_tol=MEDIAN_RTOL, abs_tol=0.0):
            return (f"the median of its {len(part)} {phase} samples is {median:.6g} ms, its row's {col.name} "
                    f"is {float(value):.6g} ms")  # fmt: skip
    return None


def sample_mismatches(table: pd.DataFrame, samples: pd.DataFrame) -> list[str]:
    """Each ran job whose samples are not its row's ('job 3: the median of its ...'), in job order.

    Samples must be the blocks the row's medians were computed from (within MEDIAN_RTOL), as many as
    its n_blocks, and carry the row's configuration where they carry configuration columns at all.
    """
    keys = [k for k in schema.config_keys() if k in samples.columns and k in table.columns]
    by_job = {int(j): part for j, part in samples.groupby("job_num", sort=False)} if len(samples) else {}
    out = []
    for row in _ok(table).to_dict("records"):
        job = row.get("job_num")
        if job is None or pd.isna(job) or int(job) not in by_job:
            continue
        problem = _job_mismatch(row, by_job[int(job)], keys)
        if problem:
            out.append(f"job {int(job)}: {problem}")
    return out


def jobs_without_samples(table: pd.DataFrame, samples: pd.DataFrame) -> list[int]:
    """Jobs that ran and were timed but have no samples: their timing can only be inconclusive."""
    ran = _ok(table)
    if "job_num" not in ran or "time_median_ms" not in ran:
        return []
    timed = ran[ran["time_median_ms"].notna() & ran["job_num"].notna()]["job_num"].astype(int)
    have = set(samples["job_num"].dropna().astype(int)) if "job_num" in samples else set()
    return [j for j in timed if j not in have]
