"""A run or sweep dir's manifest: what the dir holds is one run or one sweep, recorded when it starts.

``manifest.json`` holds the command line that started it and every job: its number, overrides,
config (the row's config columns) and dir. Rows are gathered by the manifest, never by globbing:
a job's row enters the table only if its config columns equal the manifest's for that job, so a
stale row from something else in the dir is never mixed in. ``rnnexp resume DIR`` re-runs exactly
the recorded jobs that have no ok row.

A launcher that loses a job (a cluster job cancelled, timed out, killed for memory, its node
gone) records it with :func:`record_lost`; the table then shows it as an error row saying so.
Nothing here imports Hydra or torch.

``manifest.json`` is standard JSON (RFC 8259 has no NaN or Infinity): a non-finite float is
recorded as ``{"float": "nan"}``, ``{"float": "inf"}`` or ``{"float": "-inf"}`` and read back as
the float. A config cell is compared as a value (:func:`same`): a recorded NaN equals the row's NaN
cell (empty, as pandas and ``results.write_row`` write NaN), ``inf`` equals ``inf``, an integer
equals only itself (not a float that rounds to it).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnexp.fileio import write_text_atomic

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
        text = json.dumps(encode(asdict(self)), indent=2, allow_nan=False)
        return write_text_atomic(Path(root) / MANIFEST, text + "\n")


NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}  # the recorded words, as str(float) spells them


def encode(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``{"float": WORD}`` (standard JSON holds no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": str(value)}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def _decode(obj: dict[str, Any]) -> Any:
    """json's object hook: ``{"float": WORD}`` back to its float; any other object as it is."""
    if len(obj) == 1 and obj.get("float") in NON_FINITE:
        return NON_FINITE[obj["float"]]
    return obj


def exists(root: Path) -> bool:
    return (Path(root) / MANIFEST).is_file()


def load(root: Path) -> Manifest:
    """The manifest in ``root``; ValueError naming the file if it is not one this version can read."""
    path = Path(root) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_hook=_decode)  # bare NaN: an older manifest
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')}, this rnnexp reads format {FORMAT}")
        jobs = [Job(**j) for j in data.pop("jobs")]
        return Manifest(jobs=jobs, **data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # AttributeError: not an object
        raise ValueError(f"{path}: not a readable rnnexp manifest ({' '.join(str(exc).split())})") from exc


def same(recorded: Any, written: str) -> bool:
    """A config value as the manifest holds it and as the row's CSV cell reads, compared as values.

    NaN equals a NaN cell (empty, as rows write NaN; or ``nan``); infinities equal themselves; an int
    equals the cell of that exact integer (``5`` or ``5.0``), never a float that rounds to it (2**63
    and 2**63 + 1 are one float).
    """
    if isinstance(recorded, bool) or recorded is None:
        return str(recorded if recorded is not None else "") == written
    if isinstance(recorded, int):
        return _as_int(written) == recorded
    if isinstance(recorded, float):
        if math.isnan(recorded):
            return written.strip() == "" or _as_float(written) != _as_float(written)
        return _as_float(written) == recorded
    return str(recorded) == written


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        number = _as_float(text)
        return int(number) if number is not None and number.is_integer() else None


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
    return all(key in row and same(value, row[key]) for key, value in job.config.items())


def job_row(manifest: Manifest, root: Path, job: Job) -> dict[str, str] | None:
    """The job's row from its dir if it is this job's, else None (missing, unreadable, or another's)."""
    row = read_row(manifest.job_dir(root, job) / ROW_FILE)
    return row if row is not None and belongs(row, job) else None


def pending(manifest: Manifest, root: Path) -> list[Job]:
    """The jobs that have no ok row of their own: what a resume runs.

    A job with an error row whose recorded config breaks a rule of the config alone (``init_gain=nan``)
    is done: a resume cannot change the config, so a re-run would only write the same error row.
    """
    todo = []
    for job in manifest.jobs:
        row = job_row(manifest, root, job)
        if row is None or (row.get("status") != "ok" and not refused(job)):
            todo.append(job)
    return todo


def refused(job: Job) -> bool:
    """Whether the job's recorded config is refused by ``config.check_values`` (wherever it would run)."""
    from rnnexp.config import ConfigError, check_values, from_flat_dict

    cfg = from_flat_dict(job.config)
    try:
        check_values(cfg) if cfg is not None else None
    except ConfigError:
        return True
    except TypeError:  # a value of the wrong type (a hand-edited manifest): the resume's plan says so
        return False
    return False


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
