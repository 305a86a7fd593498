"""Rows and tables: one CSV row per job, written atomically; a sweep's table gathered from them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnnexp.fileio import write_csv_atomic

ROW_FILE = "results.csv"  # one row in a job's dir; every row at a sweep's root
STEPS_FILE = "steps.csv"  # long form: one row per layer, direction and timestep; joins on job_num


def write_row(row: dict, job_dir: Path) -> Path:
    return write_csv_atomic(pd.DataFrame([row]), Path(job_dir) / ROW_FILE)


def _job_key(path: Path) -> tuple:
    name = path.parent.name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def job_row_files(sweep_dir: Path, name: str = ROW_FILE) -> list[Path]:
    """Every job's ``name`` file under a sweep dir, in job order."""
    return sorted(Path(sweep_dir).glob(f"*/{name}"), key=_job_key)


def collect(sweep_dir: Path, name: str = ROW_FILE) -> pd.DataFrame:
    """The sweep's table rebuilt from its jobs' files (also for a partial or interrupted sweep)."""
    files = job_row_files(sweep_dir, name)
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def ok_row(job_dir: Path) -> dict | None:
    """The finished row in a job dir, if there is one and it succeeded (for resuming a sweep)."""
    path = Path(job_dir) / ROW_FILE
    if not path.is_file():
        return None
    row = pd.read_csv(path).iloc[0].to_dict()
    return row if row.get("status") == "ok" else None
