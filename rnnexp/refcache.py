"""The float64 reference of a job and what is derived from it, computed once per distinct network.

The reference's numbers depend on the network, its weights and its inputs, never on the backend,
device, threads or timing settings that run it. Jobs that differ only in those (the numpy and torch
jobs of one DeepBench kernel) share one :class:`RefResult`: the reference's outputs (for parity),
its row statistics and its side tables (``steps.csv``, ``layer_stats.csv``), made in one pass
(the gates are counted by the reference's step observer, ``stats.GateCounter``).

- The key (:func:`reference_key`) hashes every config field except those that only say how to
  run it (``NOT_IN_KEY``: backend, device, threads, timing, mode, the dynamics switches, scan), the
  params' and inputs' bytes, and ``FORMAT``; the entry stores the key and is used only when the
  stored key is the same, so an entry from another config is never used.
- In-process: the last result is kept (an LRU of one), so adjacent jobs of a sweep run by one
  process (Hydra's job order puts the backends of one kernel side by side) compute it once. A job
  for another network drops it before it starts (``release_unless``), so at most one is held and
  never through another network's forward.
- On disk, when given a folder (a sweep's cache dir): one ``ref_<key>.npz`` per key (arrays, and
  the statistics and table columns exactly, as arrays and JSON; no pickle), written atomically
  (``fileio.write_atomic``) under a per-key lock (``locking.exclusive``), so parallel launchers
  compute each entry once. The CLI gives a job the folder only when another job of the sweep needs
  the same reference, and removes the folder when the run ends. A corrupt or unreadable entry is
  recomputed and replaced.
- Size cap: an entry over ``MAX_ENTRY_BYTES`` (1 GiB; every DeepBench kernel's fits: the largest,
  gru H=2560 N=32 T=1500, holds 0.98 GB) or over a quarter of the folder's free disk is not written;
  each job then computes its own reference, as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rnnexp import stats
from rnnexp.backends import Outputs
from rnnexp.backends.numpy_ref import reference
from rnnexp.config import RunConfig, as_flat_dict
from rnnexp.fileio import write_atomic
from rnnexp.locking import exclusive
from rnnexp.results import STEPS_FILE

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what an entry holds, or how the reference computes it, changes
NOT_IN_KEY = ("backend", "device", "threads", "mode", "lyapunov_k", "lyapunov_warmup", "grad_flow")
# A linear cell's reference is always the float64 sequential loop, whatever scan its backend runs.
NOT_IN_KEY += ("scan", "scan_chunk")
MAX_ENTRY_BYTES = 1 << 30
FREE_DISK_SHARE = 0.25  # an entry may take at most this share of the cache folder's free disk
LOCK_TIMEOUT_S = 1800.0  # a waiter computes its own after this (a reference can take minutes)
_OUTPUTS = ("output", "h_n", "c_n")


@dataclass
class RefResult:
    """A job's reference: float64 outputs (no per-layer states), row statistics, side tables by file name."""

    outputs: Outputs
    stats: dict[str, float]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    source: str = "computed"  # computed, memory (the in-process copy) or disk

    def nbytes(self) -> int:
        arrays = [getattr(self.outputs, n) for n in _OUTPUTS]
        tables = sum(int(t.memory_usage(deep=True).sum()) for t in self.tables.values())
        return sum(a.nbytes for a in arrays if a is not None) + tables

    def for_job(self, source: str) -> RefResult:
        """A copy a job may own: its tables get columns added (``job_num``); the arrays stay shared, read-only."""
        tables = {name: t.copy() for name, t in self.tables.items()}
        return dataclasses.replace(self, stats=dict(self.stats), tables=tables, source=source)


def key_material(cfg: RunConfig) -> dict[str, Any]:
    """The config fields that change the reference's numbers: all but how it is run (``NOT_IN_KEY``, timing)."""
    return _material(as_flat_dict(cfg))


def _material(flat: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if k not in NOT_IN_KEY and not k.startswith("timing_")}


def shared(configs: dict[int, dict[str, Any]]) -> set[int]:
    """The jobs (by number) whose reference another job of the plan also needs: only those use the disk.

    ``configs`` maps each job to its flat config (``as_flat_dict``); the material is the key's.
    """
    groups: dict[str, list[int]] = {}
    for num, flat in configs.items():
        groups.setdefault(json.dumps(_material(flat), sort_keys=True, default=str), []).append(num)
    return {num for nums in groups.values() if len(nums) > 1 for num in nums}


def reference_key(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> str:
    """sha256 of FORMAT, ``key_material(cfg)`` and every array's name, dtype, shape and bytes."""
    digest = hashlib.sha256(json.dumps({"format": FORMAT, **key_material(cfg)}, sort_keys=True).encode())
    for name, array in [*sorted(params.items()), ("x", x)]:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def compute(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, threads: int | None = None) -> RefResult:
    """Run the float64 reference with the gate counter watching, then derive its statistics and tables."""
    counter = stats.GateCounter(cfg)
    with threadpool_limits(limits=threads):
        ref = reference(cfg, params, x, observe=counter)
    row, layer_table = stats.reference_stats(cfg, ref, counter)
    tables = {STEPS_FILE: stats.step_table(cfg, ref), stats.LAYER_STATS_FILE: layer_table}
    outputs = Outputs(ref.output, ref.h_n, ref.c_n)  # the other layers' states are dropped here
    for name in _OUTPUTS:
        array = getattr(outputs, name)
        if array is not None:
            array.flags.writeable = False  # shared by every job that reads this result
    return RefResult(outputs, row, tables)


_last: tuple[str, RefResult] | None = None  # the in-process LRU of one: (key, result)
_last_material: str = ""  # key_material of _last, to drop it early for another network without hashing arrays


def reference_result(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    cache_dir: Path | str | None = None,
    threads: int | None = None,
) -> RefResult:
    """The job's RefResult: from this process's last one, from ``cache_dir``, or computed (and cached).

    ``params`` and ``x`` are what the job's backend was given; ``threads`` caps the BLAS threads the
    reference may use (None: the library's default).
    """
    global _last, _last_material
    key = reference_key(cfg, params, x)
    if _last is not None and _last[0] == key:
        return _last[1].for_job("memory")
    forget()  # drop another network's result before making this one
    if cache_dir is None:
        result = compute(cfg, params, x, threads)
    else:
        result = _through_disk(Path(cache_dir), key, cfg, params, x, threads)
    _last, _last_material = (key, result), _material_text(cfg)
    return result.for_job(result.source)


def forget() -> None:
    """Drop the in-process copy (tests; a caller that needs the memory back)."""
    global _last, _last_material
    _last, _last_material = None, ""


def release_unless(cfg: RunConfig) -> None:
    """Drop the in-process copy unless it may be ``cfg``'s: a job calls this before it allocates anything,
    so the previous network's reference is not held through its forward."""
    if _last is not None and _last_material != _material_text(cfg):
        forget()


def _material_text(cfg: RunConfig) -> str:
    return json.dumps(key_material(cfg), sort_keys=True, default=str)


def entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"ref_{key}.npz"


def _through_disk(cache_dir: Path, key: str, cfg: RunConfig, params, x, threads) -> RefResult:
    path = entry_path(cache_dir, key)
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = read_entry(path, key)
    if found is not None:
        return found
    with exclusive(path, LOCK_TIMEOUT_S):
        found = read_entry(path, key)  # another job may have written it while this one waited
        if found is not None:
            return found
        result = compute(cfg, params, x, threads)
        if fits(result, cache_dir):
            write_entry(path, key, result)
    return result


def fits(result: RefResult, cache_dir: Path) -> bool:
    """Whether an entry may be written: under MAX_ENTRY_BYTES and a FREE_DISK_SHARE of the free disk."""
    size = result.nbytes()
    free = shutil.disk_usage(cache_dir).free
    if size > MAX_ENTRY_BYTES or size > FREE_DISK_SHARE * free:
        log.info(
            "reference not cached: %.0f MB (cap %.0f MB, free disk %.0f MB)",
            size / 1e6,
            MAX_ENTRY_BYTES / 1e6,
            free / 1e6,
        )
        return False
    return True


def write_entry(path: Path, key: str, result: RefResult) -> None:
    """The entry as one .npz: outputs, table columns, and a JSON ``meta`` (key, statistics, table layout)."""
    arrays = {name: getattr(result.outputs, name) for name in _OUTPUTS if getattr(result.outputs, name) is not None}
    layout = {}
    for name, table in result.tables.items():
        layout[name] = list(table.columns)
        for col in table.columns:
            values = table[col].to_numpy()
            arrays[f"{name}/{col}"] = values.astype(str) if values.dtype == object else values
    meta = {"format": FORMAT, "key": key, "stats": result.stats, "tables": layout}
    arrays["meta"] = np.array(json.dumps(meta))
    write_atomic(path, lambda fh: np.savez(fh, **arrays), binary=True)


def read_entry(path: Path, key: str) -> RefResult | None:
    """The entry at ``path`` if it is whole and made for ``key``; None otherwise (missing, corrupt, other key)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != FORMAT or meta.get("key") != key:
                return None
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    outputs = Outputs(*(arrays.get(name) for name in _OUTPUTS))
    for name in _OUTPUTS:
        array = getattr(outputs, name)
        if array is not None:
            array.flags.writeable = False
    tables = {
        name: pd.DataFrame({col: arrays[f"{name}/{col}"] for col in columns}, columns=columns)
        for name, columns in meta["tables"].items()
    }
    return RefResult(outputs, meta["stats"], tables, "disk")
