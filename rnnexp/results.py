"""Rows and tables: a job's row and side tables in its dir; a sweep's tables gathered by its manifest.

A job writes its side tables (``steps.csv``, ``samples.csv``, ...) first and its row last, each
atomically, so a row on disk means the job's files are complete; not fsync'd (``fileio``'s
``durable``): a killed job leaves whole files or none, a power loss may lose its last jobs' files.
A sweep's tables are gathered job by job in manifest order from the rows that belong to the sweep
(``manifest.job_row``), the cells copied as written (no float is re-rounded on the way), and a job
the launcher lost becomes an error row naming what happened.
"""

from __future__ import annotations

import csv
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rnnexp import manifest as mf
from rnnexp.fileio import write_atomic, write_csv_atomic

ROW_FILE = mf.ROW_FILE  # one row in a job's dir; every row at a sweep's root
STEPS_FILE = "steps.csv"  # long form: one row per layer, direction and timestep; joins on job_num
SIDE_TABLES = ("steps.csv", "layer_stats.csv", "samples.csv", "lyapunov.csv")  # beside results.csv, long form


def rerun_command(overrides: Iterable[str]) -> str:
    """The single run that re-creates a row: ``python -m rnnexp`` and its overrides, shell-quoted."""
    return " ".join(["python -m rnnexp", *(shlex.quote(o) for o in overrides)])


def _cell(value) -> object:
    """A value as pandas would write it: NaN and None empty, everything else as Python prints it.

    Empty is a CSV cell's one spelling of NaN (pandas reads it back as NaN, and ``pd.to_numeric`` would
    refuse ``nan``); ``manifest.same`` matches a recorded NaN to it. Infinities are written ``inf``/``-inf``.
    """
    if value is None or value != value:  # NaN of any float type is not equal to itself
        return ""
    return value


def write_row(row: dict, job_dir: Path, durable: bool = True) -> Path:
    """A job's one-row results.csv (the csv module: a row is written per job, pandas costs ~5 ms each)."""

    def write(fh) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(row.keys())
        writer.writerow([_cell(v) for v in row.values()])

    return write_atomic(Path(job_dir) / ROW_FILE, write, durable=durable)


def write_job(row: dict, tables: dict[str, pd.DataFrame], job_dir: Path, job_num: int) -> Path:
    """The job's side tables (each with ``job_num`` first), then its row: last, so a row means all is there.

    A side table this attempt did not make (an error row has none) is removed: an earlier attempt's
    must not be gathered beside this row.
    """
    for name in SIDE_TABLES:
        if name not in tables:
            (Path(job_dir) / name).unlink(missing_ok=True)
    for name, table in tables.items():
        with_num = table.copy(deep=False)  # the table's own columns are not copied: ~0.35 ms less than assign
        with_num.insert(0, "job_num", job_num)
        write_csv_atomic(with_num, Path(job_dir) / name, durable=False)
    return write_row(row, job_dir, durable=False)


@dataclass
class Gathered:
    """A sweep's rows by the manifest: the rows' CSV cells, and which jobs are missing or lost."""

    rows: list[dict[str, str]] = field(default_factory=list)
    row_dirs: list[Path] = field(default_factory=list)  # the dirs of the rows that came from jobs
    missing: list[int] = field(default_factory=list)  # no row of their own: not run, interrupted, crashed
    lost: list[int] = field(default_factory=list)  # lost by the launcher: an error row stands for each

    @property
    def failed(self) -> int:
        return sum(_failed(r) for r in self.rows)


def _failed(row: dict[str, str]) -> bool:
    """A job that failed, or ran but disagrees with the reference or the shape formulas."""
    if row.get("status") != "ok":
        return True
    return any(row.get(c, "True") not in ("True", "") for c in ("parity_ok", "shape_ok", "grad_parity_ok"))


def lost_row(job: mf.Job, record: dict) -> dict[str, str]:
    """The error row of a job the launcher lost: its config, and what the launcher saw."""
    detail = f": {record['detail']}" if record.get("detail") else ""
    row = {k: str(_cell(v)) for k, v in job.config.items()}  # as the job's own row would write them
    row.update(status="error", error=f"lost on the cluster: {record['state']}{detail}", job_num=str(job.num))
    row.update(overrides=" ".join(job.overrides), command=rerun_command(job.overrides))
    return row


def gather(manifest: mf.Manifest, root: Path) -> Gathered:
    """The sweep's rows in job order: each job's own row, or an error row if its launcher lost it."""
    out, lost = Gathered(), mf.lost_jobs(root)
    for job in manifest.jobs:
        row = mf.job_row(manifest, root, job)
        if row is not None:
            out.rows.append(row)
            out.row_dirs.append(manifest.job_dir(root, job))
        elif job.num in lost:
            out.rows.append(lost_row(job, lost[job.num]))
            out.lost.append(job.num)
        else:
            out.missing.append(job.num)
    return out


def _columns(rows: Iterable[dict[str, str]], table: str = ROW_FILE) -> list[str]:
    """The declared columns of ``table`` in order, then any undeclared ones the rows hold."""
    from rnnexp import schema

    declared = schema.names(table) if table in schema.TABLES else []
    return list(dict.fromkeys([*declared, *(c for r in rows for c in r)]))


def _write_rows(rows: list[dict[str, str]], columns: list[str], path: Path) -> Path:
    def write(fh) -> None:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    return write_atomic(path, write)


def _side_rows(dirs: list[Path], name: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for folder in dirs:
        try:
            with open(folder / name, newline="", encoding="utf-8") as fh:
                rows.extend(csv.DictReader(fh))
        except FileNotFoundError:
            continue
    return rows


def write_tables(gathered: Gathered, root: Path, columns: list[str] | None = None) -> Path:
    """The sweep's ``results.csv`` and each side table that any of its jobs wrote; a stale one is removed."""
    path = _write_rows(gathered.rows, columns or _columns(gathered.rows), Path(root) / ROW_FILE)
    for name in SIDE_TABLES:
        rows = _side_rows(gathered.row_dirs, name)
        target = Path(root) / name
        if rows:
            _write_rows(rows, _columns(rows, name), target)
        elif target.is_file() and Path(root).resolve() not in [d.resolve() for d in gathered.row_dirs]:
            target.unlink()  # left by an earlier state of this sweep: no job of it has that table now
    return path


def collect(sweep_dir: Path, name: str = ROW_FILE) -> pd.DataFrame:
    """A sweep's table (``name``: results.csv or a side table) rebuilt from its jobs, for a partial sweep too.

    Gathered by the dir's manifest; a dir made before manifests existed is read by its numbered job dirs.
    """
    root = Path(sweep_dir)
    if mf.exists(root):
        gathered = gather(mf.load(root), root)
        rows = gathered.rows if name == ROW_FILE else _side_rows(gathered.row_dirs, name)
        return pd.DataFrame(rows, columns=_columns(rows, name)).pipe(_retype) if rows else pd.DataFrame()
    files = sorted(root.glob(f"*/{name}"), key=_job_key)
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def _job_key(path: Path) -> tuple:
    name = path.parent.name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _retype(df: pd.DataFrame) -> pd.DataFrame:
    """Strings read back as CSV values would be (pandas' own type inference)."""
    import io

    if df.empty:
        return df
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    buf.seek(0)
    return pd.read_csv(buf)


def ok_row(job_dir: Path) -> dict | None:
    """The finished row in a job dir, if there is one and it succeeded."""
    row = mf.read_row(Path(job_dir) / ROW_FILE)
    return row if row is not None and row.get("status") == "ok" else None
