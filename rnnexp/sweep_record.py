"""A finished run or sweep dir as the history store keeps it: its rows, its samples and what it ran on.

``read(dir)`` reads the dir's ``results.csv`` (or, without one, the rows its manifest gathers), its
``samples.csv``, and the metadata: the command, the start time, the commit and dirty flag, and the
machine fingerprint (CPU model, cores, torch and numpy versions, thread settings) from ``env.json``,
or from the rows' own provenance columns for a dir without one. The ``key`` names the sweep wherever
its dir is copied (a CI artifact unpacked elsewhere is the same sweep): a hash of its manifest, or
of its table for a dir made before manifests. Nothing here imports torch, Hydra or DuckDB.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from rnnexp import manifest as mf
from rnnexp import schema


class RecordError(ValueError):
    """A dir the store cannot take (no results, an unreadable table); the message is one line naming it."""


@dataclass
class Meta:
    """One run or sweep: the ``sweeps`` table's row (``sweep_id`` is given by the store)."""

    key: str  # identity wherever the dir is copied: the hash of its manifest (or table)
    kind: str  # sweep or run
    sweep_dir: str
    started_utc: str
    command: str
    git_commit: str = ""
    git_dirty: bool | None = None
    machine: str = ""  # what the timing series are grouped by: CPU model and cores
    hostname: str = ""
    cpu_model: str = ""
    cores: int | None = None  # cores this process could use (logical cores where unknown)
    torch_version: str = ""
    numpy_version: str = ""
    threads: str = ""  # JSON: thread variables, torch's threads and each BLAS pool's, as env.json saw them
    rnnexp_version: str = ""
    n_jobs: int = 0
    n_rows: int = 0
    n_missing: int = 0  # jobs with no row (an interrupted sweep); a later append of the finished sweep replaces it
    env_json: str = ""  # the whole env.json, for what the columns above leave out
    added_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Record:
    meta: Meta
    rows: pd.DataFrame  # results.csv, declared dtypes
    samples: pd.DataFrame  # samples.csv, declared dtypes (empty when the dir has none)


def machine_label(cpu_model: str, cores: int | None) -> str:
    """The machine a timing series belongs to: its CPU and the cores the run could use (not its hostname: CI
    runners' names change; the usable cores, as a container or ``taskset`` limits them, are what the jobs had)."""
    model = " ".join(str(cpu_model or "unknown CPU").split())
    return f"{model}, {cores} core{'s' if cores != 1 else ''}" if cores else model


def _env(root: Path) -> dict[str, Any]:
    try:
        env = json.loads((root / "env.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return env if isinstance(env, dict) else {}


def _threads(env: dict[str, Any], rows: pd.DataFrame) -> str:
    """The thread settings behind the timings: each job's ``threads`` and engine pool, torch's and BLAS's."""
    pools = [b for b in env.get("blas") or [] if isinstance(b, dict)]
    blas = [{k: b.get(k) for k in ("internal_api", "num_threads")} for b in pools]
    per_job = {c: sorted({int(v) for v in rows[c].dropna()}) for c in ("threads", "engine_threads") if c in rows}
    settings = {**per_job, "torch_num_threads": env.get("torch_num_threads"), "blas": blas}
    return json.dumps(settings, sort_keys=True)


def _first(rows: pd.DataFrame, name: str) -> Any:
    if name not in rows.columns:
        return None
    values = rows[name].dropna()
    return values.iloc[0] if len(values) else None


def _tables(root: Path, rows: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, samples) of the dir: its gathered tables, or its manifest's job rows when it has none."""
    from rnnexp import results

    try:
        if (root / schema.RESULTS).is_file():
            rows = schema.read_table(root / schema.RESULTS) if rows is None else rows
            path = root / schema.SAMPLES
            samples = schema.read_table(path, schema.SAMPLES) if path.is_file() else pd.DataFrame()
            return rows, samples
        if mf.exists(root):
            rows, samples = results.collect(root), results.collect(root, schema.SAMPLES)
            rows = schema.conform_frame(schema.coerce(rows)) if len(rows) else rows
            return rows, schema.coerce(samples, schema.SAMPLES) if len(samples) else samples
    except (schema.TableError, ValueError) as exc:
        raise RecordError(f"{root}: {' '.join(str(exc).split())}") from None
    return pd.DataFrame(), pd.DataFrame()


def read(folder: Path | str, rows: pd.DataFrame | None = None) -> Record:
    """The run or sweep in ``folder``; RecordError when it holds no rows.

    ``rows``: its ``results.csv`` as ``schema.read_table`` read it already (the CLI has, at a sweep's end).
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise RecordError(f"{folder}: {'no such directory' if not root.exists() else 'not a directory'}")
    rows, samples = _tables(root, rows)
    if rows.empty:
        raise RecordError(f"{folder}: no results (a run or sweep dir holds results.csv or manifest.json with rows)")
    env = _env(root)
    manifest = mf.load(root) if mf.exists(root) else None
    if manifest is not None:
        identity = [manifest.kind, manifest.argv, manifest.created_utc, [(j.num, j.dir) for j in manifest.jobs]]
        key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        kind, started = manifest.kind, manifest.created_utc
        command = " ".join(["rnnexp", *(shlex.quote(a) for a in manifest.argv)])
        n_jobs = len(manifest.jobs)
        nums = pd.to_numeric(rows["job_num"], errors="coerce") if "job_num" in rows else pd.Series(dtype=float)
        done = set(nums.dropna().astype(int))
        n_missing = sum(j.num not in done for j in manifest.jobs)
    else:  # made before manifests: the table itself is the identity
        key = hashlib.sha256((root / schema.RESULTS).read_bytes()).hexdigest()
        kind = "sweep" if len(rows) > 1 else "run"
        mtime = (root / schema.RESULTS).stat().st_mtime
        started = env.get("start_time_utc") or datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds")
        command, n_jobs, n_missing = str(_first(rows, "command") or ""), len(rows), 0
    cpu = str(env.get("cpu_model") or _first(rows, "cpu_model") or "")
    cores = env.get("cores_usable") or env.get("cores_logical")
    dirty = env.get("git_dirty", _first(rows, "git_dirty"))
    meta = Meta(
        key=key,
        kind=kind,
        sweep_dir=str(root),
        started_utc=str(started),
        command=command,
        git_commit=str(env.get("git_commit") or _first(rows, "git_commit") or ""),
        git_dirty=None if dirty is None or dirty is pd.NA else bool(dirty),
        machine=machine_label(cpu, cores),
        hostname=str(env.get("hostname") or _first(rows, "hostname") or ""),
        cpu_model=cpu,
        cores=int(cores) if cores else None,
        torch_version=str(env.get("torch_version") or _first(rows, "torch_version") or ""),
        numpy_version=str(env.get("numpy_version") or _first(rows, "numpy_version") or ""),
        threads=_threads(env, rows),
        rnnexp_version=str(env.get("rnnexp_version") or _first(rows, "rnnexp_version") or ""),
        n_jobs=n_jobs,
        n_rows=len(rows),
        n_missing=n_missing,
        env_json=json.dumps(env, sort_keys=True, default=str) if env else "",
    )
    return Record(meta, rows, samples)
