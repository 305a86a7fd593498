"""This machine's memory bandwidth: the yardstick for the linear cells' bytes moved (they are memory-bound).

Measured like the GEMM peak (``rnnexp.peak``): STREAM's copy kernel (``numpy.copyto`` between two
arrays of ``SIZE_BYTES``, far beyond the caches; read + write = 2 x the array's bytes per copy) under the
job's threads, the best of ``ROUNDS`` rounds of the median of a few copies (interference only slows a copy
down), cached once per (host, threads) as JSON in the sweep's peak dir, written atomically under a lock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnexp.fileio import write_json_atomic
from rnnexp.locking import exclusive
from rnnexp.peak import host_name
from rnnexp.threads import limited_threads

SIZE_BYTES = 64 << 20
ROUNDS = 5
COPIES = 3
LOCK_TIMEOUT_S = 120.0


def cache_path(cache_dir: Path | str, threads: int) -> Path:
    return Path(cache_dir) / f"bandwidth_{host_name()}_{threads}t.json"


def measure_bandwidth(threads: int, size_bytes: int = SIZE_BYTES, clock=time.perf_counter) -> dict[str, Any]:
    """{'gbytes_per_s', 'size_bytes', 'threads', 'method'}: the best round's median copy rate."""
    src = np.ones(size_bytes // 8)
    dst = np.zeros_like(src)  # both touched before timing: no first-touch page faults in the rounds
    best = 0.0
    with limited_threads(threads):
        for _ in range(ROUNDS):
            seconds = []
            for _ in range(COPIES):
                start = clock()
                np.copyto(dst, src)
                seconds.append(clock() - start)
            median = float(np.median(seconds))
            if median > 0:
                best = max(best, 2 * src.nbytes / median / 1e9)
    return {"gbytes_per_s": best, "size_bytes": int(src.nbytes), "threads": threads, "method": "stream_copy"}


def bandwidth(threads: int, cache_dir: Path | str | None = None) -> dict[str, Any]:
    """The record for (this host, threads): read from ``cache_dir`` if there, else measured (and cached)."""
    if cache_dir is None:
        return measure_bandwidth(threads)
    path = cache_path(cache_dir, threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _read(path)
    if record is not None:
        return record
    with exclusive(path, LOCK_TIMEOUT_S):
        record = _read(path)
        if record is None:
            record = measure_bandwidth(threads)
            write_json_atomic(path, record)
    return record


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("gbytes_per_s", 0) > 0 else None


def columns(cfg, median_s: float, device: str, cache_dir: Path | str | None) -> dict[str, Any]:
    """A linear cell's row: bytes its scans move, the rate achieved, the CPU bandwidth and the fraction."""
    from rnnexp.linear import work

    moved = work.forward_bytes(cfg) * (2 if cfg.mode.value == "training" else 1)  # the adjoint scans move as much
    achieved = moved / median_s / 1e9 if median_s > 0 else float("nan")
    peak = bandwidth(cfg.threads, cache_dir)["gbytes_per_s"] if device == "cpu" else None
    return {
        "scan_bytes": moved,
        "scan_gbytes_per_s": achieved,
        "peak_gbytes_per_s": peak,
        "bandwidth_frac": achieved / peak if peak else None,
    }
