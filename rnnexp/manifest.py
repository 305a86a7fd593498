"""A run or sweep dir's manifest: what the dir holds is one run or one sweep, recorded when it starts.

``manifest.json`` holds the command line that started it and every job: its number, overrides,
config (the row's config columns) and dir. Rows are gathered by the manifest, never by globbing:
a job's row enters the table only if its config columns equal the manifest's for that job, so a
stale row from something else in the dir is never mixed in. ``rnnexp resume DIR`` re-runs exactly
the recorded jobs that have no ok row.

A launcher that loses a job (a cluster job cancelled, timed out, killed for memory, its node
gone) records it with :func:`record_lost`; the table then shows it as an error row saying so.
Nothing here imports Hydra or torch.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnexp.fileio import write_json_atomic

MANIFEST = "manifest.json"
LOST = "lost.jsonl"
ROW_FILE = "results.csv"
FORMAT = 1  # bumped when the manifest's layout changes incompatibly

log = logging.getLogger(__name__)


@dataclass
class Job:
    num: int
    overrides: list[str]
    config: dict[str, Any]  # the row's config columns (rnnexp.config.as_flat_dict)
    dir: str  # relative to the manifest's dir ("." for a single run)


@dataclass
class Manifest:
    kind: str  # "sweep" or "run"
    argv: list[str]  # the command line that started it, as rnnexp's arguments
    jobs: list[Job]
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    rnnexp_version: str = ""
    format: int = FORMAT

    def job_dir(self, root: Path, job: Job) -> Path:
        return (Path(root) / job.dir).resolve()

    def write(self, root: Path) -> Path:
        return write_json_atomic(Path(root) / MANIFEST, asdict(self))


def exists(root: Path) -> bool:
    return (Path(root) / MANIFEST).is_file()


def load(root: Path) -> Manifest:
    """The manifest in ``root``; ValueError naming the file if it is not one this version can read."""
    path = Path(root) / MANIFEST
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')}, this rnnexp reads format {FORMAT}")
        jobs = [Job(**j) for j in data.pop("jobs")]
        return Manifest(jobs=jobs, **data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable rnnexp manifest ({' '.join(str(exc).split())})") from exc


def _same(recorded: Any, written: str) -> bool:
    """A config value as the manifest holds it and as the row's CSV cell reads, compared as values."""
    if isinstance(recorded, bool) or recorded is None:
        return str(recorded if recorded is not None else "") == written
    if isinstance(recorded, (int, float)):
        try:
            return float(recorded) == float(written)
        except ValueError:
            return False
    return str(recorded) == written


def read_row(path: Path) -> dict[str, str] | None:
    """A job's one-row results.csv as strings, or None when it is missing or unreadable."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    return rows[0] if len(rows) == 1 else None


def belongs(row: dict[str, str], job: Job) -> bool:
    """Whether a row is this job's: its number and every config column as the manifest recorded them."""
    if row.get("job_num") != str(job.num):
        return False
    return all(key in row and _same(value, row[key]) for key, value in job.config.items())


def job_row(manifest: Manifest, root: Path, job: Job) -> dict[str, str] | None:
    """The job's row from its dir if it is this job's, else None (missing, unreadable, or another's)."""
    row = read_row(manifest.job_dir(root, job) / ROW_FILE)
    return row if row is not None and belongs(row, job) else None


def pending(manifest: Manifest, root: Path) -> list[Job]:
    """The jobs that have no ok row of their own: what a resume runs."""
    done = []
    for job in manifest.jobs:
        row = job_row(manifest, root, job)
        if row is None or row.get("status") != "ok":
            done.append(job)
    return done


def record_lost(sweep_dir: Path, job_num: int, state: str, detail: str = "") -> None:
    """Record that a launcher lost job ``job_num`` (e.g. SLURM state CANCELLED, TIMEOUT, OUT_OF_MEMORY).

    Appended as one JSON line and fsync'd; the table shows the job as an error row naming ``state``
    unless the job's own row exists.
    """
    line = json.dumps({"job_num": int(job_num), "state": str(state), "detail": " ".join(str(detail).split())})
    with open(Path(sweep_dir) / LOST, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def lost_jobs(root: Path) -> dict[int, dict[str, Any]]:
    """The last record per job number from ``lost.jsonl`` (a half-written last line is skipped)."""
    out: dict[int, dict[str, Any]] = {}
    try:
        lines = (Path(root) / LOST).read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
            out[int(record["job_num"])] = record
        except (ValueError, KeyError, TypeError):
            log.warning("skipped a malformed line of %s", Path(root) / LOST)
    return out
