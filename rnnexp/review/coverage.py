"""Which of a sweep's jobs a table covers, and whether the sweep is still being written.

A sweep's manifest records every job it was started with; a job without a row (not run yet,
interrupted, its dir deleted) is named by its number and overrides, so a partial report says it
is partial. A sweep still running holds ``.rnnexp.lock`` (``rnnexp.dirlock``): review probes it
without taking it, so a report of a live sweep can say so, or refuse to write into it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from rnnexp import dirlock
from rnnexp import manifest as mf

SHOWN = 10  # missing jobs named one by one before "and N more"


def sweep_root(path: Path) -> Path | None:
    """The run or sweep dir ``path`` belongs to (itself, or the sweep above a job dir); None for a loose CSV."""
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, folder.parent):
        if mf.exists(candidate) or (candidate / dirlock.LOCK).exists():
            return candidate
    return None


def live_holder(root: Path) -> str | None:
    """Who holds ``root``'s lock when a live process does (a sweep still running), else None."""
    path = Path(root) / dirlock.LOCK
    if not path.is_file():
        return None
    probe = FileLock(path, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return dirlock.holder(root)
    except OSError:  # a read-only copy: nothing can be writing it
        return None
    probe.release()
    return None


def describe(job: mf.Job) -> str:
    return f"job {job.num} ({' '.join(job.overrides)})" if job.overrides else f"job {job.num}"


def missing_jobs(jobs: list[mf.Job], table: pd.DataFrame) -> list[mf.Job]:
    """The recorded jobs that have no row in ``table`` (an error row, a lost job's too, counts as a row)."""
    have = set(table["job_num"].dropna().astype(int)) if "job_num" in table else set()
    return [j for j in jobs if j.num not in have]


def missing_phrase(missing: list[mf.Job], expected: int) -> str:
    """'4 of 6 jobs have no row (not run, interrupted or deleted): job 2 (hidden_size=16), ...'."""
    named = ", ".join(describe(j) for j in missing[:SHOWN])
    more = f", and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
    return f"{len(missing)} of {expected} jobs have no row (not run, interrupted or deleted): {named}{more}"
