"""This machine's GEMM peak: the yardstick for ``peak_frac`` = achieved GFLOP/s / peak GFLOP/s.

A square matrix product (n = 1024 by default: compute-bound, a few tens of ms per product on one
core) is timed with ``rnnexp.measure`` under the given thread count, in NumPy (its BLAS, which the
NumPy backends use) and in torch (MKL/oneDNN, which the torch backends use) when torch is
installed; the peak is the faster library's median, so every backend is judged against the best
this machine does. Figures are cached as one JSON file per (dtype, threads) in a directory (a
sweep dir), written atomically, under a lock so that parallel jobs measure once and never at
the same time as each other.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from rnnexp.config import TimingConfig
from rnnexp.fileio import write_json_atomic
from rnnexp.measure import measure

SIZE = 1024
TIMING = TimingConfig(warmup=1, min_run_time_s=0.15, max_run_time_s=1.0, min_blocks=5, block_min_s=0.01)
LOCK_TIMEOUT_S = 120.0


def cache_path(cache_dir: Path | str, dtype: str, threads: int) -> Path:
    return Path(cache_dir) / f"gemm_peak_{dtype}_{threads}t.json"


def libraries() -> list[str]:
    """The GEMM libraries measured: numpy always, torch when it is installed."""
    return ["numpy"] + (["torch"] if find_spec("torch") is not None else [])


def measure_gemm(
    dtype: str, threads: int, size: int | None = None, library: str = "numpy", timing: TimingConfig | None = None
) -> dict:
    """Time ``size``-square products in one library on ``threads`` threads; GFLOP/s from the median and the best."""
    from rnnexp.runner import limited_threads  # pins BLAS (threadpoolctl) and torch alike

    size, timing = size or SIZE, timing or TIMING
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    out = np.empty((size, size), dtype)
    if library == "torch":
        import torch

        ta, tb, tout = (torch.from_numpy(m) for m in (a, b, out))
        call = lambda: torch.mm(ta, tb, out=tout)  # noqa: E731
    else:
        call = lambda: np.matmul(a, b, out=out)  # noqa: E731
    with limited_threads(threads):
        meas, _ = measure(call, timing)
    flops = 2 * size**3
    return {
        "gflops": flops / meas.median_s / 1e9,
        "gflops_best": flops / meas.min_s / 1e9,
        "time_median_ms": 1e3 * meas.median_s,
        "time_iqr_ms": 1e3 * meas.iqr_s,
        "n_runs": meas.n_runs,
    }


def measure_peak(dtype: str, threads: int, size: int | None = None) -> dict[str, Any]:
    """The peak record: per-library figures and the best median (``gflops``)."""
    size = size or SIZE
    per_library = {lib: measure_gemm(dtype, threads, size, lib) for lib in libraries()}
    best = max(per_library, key=lambda lib: per_library[lib]["gflops"])
    return {
        "dtype": dtype,
        "threads": threads,
        "size": size,
        "gflops": per_library[best]["gflops"],
        "library": best,
        "libraries": per_library,
        "measured_at_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive lock beside ``path`` (filelock), so parallel jobs measure once and never at the same time.

    After ``timeout_s`` it measures anyway rather than hang: the atomic write keeps the file whole.
    The lock file is removed while still held, so none is left behind (filelock re-checks the inode).
    """
    lock_path = path.with_name(path.name + ".lock")
    lock = FileLock(lock_path, timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout:
        yield
        return
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        lock.release()


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("gflops", 0) > 0 else None


def gemm_peak(dtype: str, threads: int, cache_dir: Path | str | None = None, size: int | None = None) -> dict[str, Any]:
    """The peak record for (dtype, threads): read from ``cache_dir`` if there, else measured (and cached)."""
    if cache_dir is None:
        return measure_peak(dtype, threads, size)
    path = cache_path(cache_dir, dtype, threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _read(path)
    if record is not None:
        return record
    with _locked(path):
        record = _read(path)  # another job may have measured it while this one waited
        if record is None:
            record = measure_peak(dtype, threads, size)
            write_json_atomic(path, record)
    return record


def gemm_peak_gflops(dtype: str, threads: int, cache_dir: Path | str | None = None) -> float:
    """This machine's GEMM peak in GFLOP/s for ``dtype`` ('float32'/'float64') on ``threads`` threads."""
    return float(gemm_peak(dtype, threads, cache_dir)["gflops"])


def peak_frac(gflops: float, peak_gflops: float) -> float:
    """Achieved / peak (NaN without a positive peak)."""
    return gflops / peak_gflops if peak_gflops > 0 else float("nan")


def cached_peaks(cache_dir: Path | str) -> list[dict[str, Any]]:
    """Every peak record cached in ``cache_dir`` (for env.json)."""
    found = (_read(p) for p in sorted(Path(cache_dir).glob("gemm_peak_*.json")))
    return [r for r in found if r is not None]
