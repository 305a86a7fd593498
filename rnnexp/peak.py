"""This machine's GEMM peak: the yardstick for ``peak_frac`` = achieved GFLOP/s / peak GFLOP/s.

A square matrix product (n = 1024 by default: compute-bound, a few tens of ms per product on one
core) is timed with ``rnnexp.measure`` under the given thread count in each "library": the framework
of each installed backend that declares its GEMM a yardstick (``Backend.gemm``: NumPy's BLAS, which
the NumPy backends use, and torch's MKL/oneDNN, which the torch backends use), named by that backend,
so every backend is judged against the best this machine does.

Stability: a peak is a best case (interference only ever slows a product down), so it is taken as
the best of several short rounds rather than the median of one. Each library is first warmed up
for ``WARMUP_S`` (clock ramp-up, caches, first-touch of the output's pages), then ``ROUNDS`` rounds
alternate between the libraries, each round the median of a few blocks (``TIMING``); a library's
figure is its best round's median, the peak the faster library's. A burst of other work spoils
only the rounds it overlaps. The old method (one 0.15 s median) swung 47-102 GFLOP/s over 40 runs
on a 2-core machine whose other core was busy part of the time; ``benchmarks/gemm_peak.py
--spread N`` measures the new one's spread over N fresh processes (target <= 10%).

Load: the record keeps the 1-minute load average when it was measured and the CPU seconds other
processes used meanwhile (``envinfo.CpuMeter``); it is ``loaded`` when those exceed
``LOADED_OTHER_CPU`` cores on average over the measurement (a quarter of a core: an idle machine
shows a few hundredths), and rows whose ``peak_frac`` rests on it say so in ``peak_loaded``.

Figures are cached as one JSON file per (host, dtype, threads) in a directory (a sweep dir: a
SLURM sweep may run on several nodes), written atomically, under a lock so that parallel jobs
measure once and never at the same time as each other.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rnnexp import backends
from rnnexp.backends import noop
from rnnexp.config import TimingConfig
from rnnexp.envinfo import CpuMeter, load_avg_1m
from rnnexp.fileio import write_json_atomic
from rnnexp.locking import exclusive
from rnnexp.measure import measure, time_block

SIZE = 1024
WARMUP_S = 0.1  # per library, before the rounds: discarded; it also sizes the rounds' blocks
ROUNDS = 5
# One round: the median of 3 blocks of >= 10 ms (a 1024-square fp32 product takes 5-25 ms on one
# core), the blocks sized once in the warm-up rather than in every round. About 0.6 s for both
# libraries' warm-up and rounds on one core. ``measure_gemm`` (one library, benchmarks) uses TIMING
# with rnnexp.measure's whole method.
TIMING = TimingConfig(warmup=0, min_run_time_s=0.05, max_run_time_s=1.0, min_blocks=3, block_min_s=0.01)
LOADED_OTHER_CPU = 0.25  # other processes' CPU seconds per wall second above which the peak counts as loaded
LOCK_TIMEOUT_S = 120.0


def host_name() -> str:
    """This machine's name as a file name part (anything but letters, digits, '.', '-' becomes '_')."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def cache_path(cache_dir: Path | str, dtype: str, threads: int, host: str | None = None) -> Path:
    return Path(cache_dir) / f"gemm_peak_{host or host_name()}_{dtype}_{threads}t.json"


def libraries() -> list[str]:
    """The GEMM libraries measured, by backend name: the installed backends declaring ``gemm``."""
    return backends.gemm_yardsticks()


def gemm_call(dtype: str, size: int, library: str | None = None) -> Callable[[], Any]:
    """One ``size``-square product in ``library`` (a backend declaring ``gemm``; default: the reference),
    into a preallocated output: the backend module's ``gemm_call``."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    out = np.empty((size, size), dtype)
    return backends.load(library or backends.reference()).gemm_call(a, b, out)


def measure_gemm(
    dtype: str, threads: int, size: int | None = None, library: str | None = None, timing: TimingConfig | None = None
) -> dict:
    """Time ``size``-square products in one library on ``threads`` threads; GFLOP/s from the median and the best."""
    from rnnexp.threads import limited_threads  # pins BLAS (threadpoolctl) and the backends' own pools alike

    size = size or SIZE
    call = gemm_call(dtype, size, library)
    with limited_threads(threads):
        meas, _ = measure(call, timing or TIMING)
    return _figures(size, meas.times_s, meas.n_runs)


def _figures(size: int, per_call_s: Any, n_runs: int) -> dict:
    times = np.asarray(per_call_s, dtype=np.float64)
    median, (q1, q3) = float(np.median(times)), np.percentile(times, [25, 75])
    flops = 2 * size**3
    return {
        "gflops": flops / median / 1e9,
        "gflops_best": flops / float(times.min()) / 1e9,
        "time_median_ms": 1e3 * median,
        "time_iqr_ms": 1e3 * float(q3 - q1),
        "n_runs": n_runs,
    }


def _warm_up(call: Callable[[], Any], seconds: float, block_min_s: float) -> int:
    """Run ``call`` for ``seconds`` (clock ramp-up, caches, first touch); the calls a block of block_min_s needs."""
    start = time.perf_counter()
    calls = 0
    while not calls or time.perf_counter() - start < seconds:
        call()
        calls += 1
    per_call_s = (time.perf_counter() - start) / calls
    return max(1, math.ceil(block_min_s / per_call_s))


def _round(call: Callable[[], Any], size: int, number: int, blocks: int) -> dict:
    """One round: ``blocks`` blocks of ``number`` calls each, their median per-call time as GFLOP/s."""
    per_call = [time_block(call, noop, number, time.perf_counter) / number for _ in range(blocks)]
    return _figures(size, per_call, number * blocks)


def measure_peak(dtype: str, threads: int, size: int | None = None, rounds: int | None = None) -> dict[str, Any]:
    """The peak record (module docstring): per-library best-of-rounds figures, the best (``gflops``), the load."""
    from rnnexp.threads import limited_threads

    size, rounds = size or SIZE, rounds or ROUNDS
    calls = {lib: gemm_call(dtype, size, lib) for lib in libraries()}  # imports the frameworks: not measured
    meter, load, start = CpuMeter(), load_avg_1m(), time.perf_counter()
    figures: dict[str, list[dict]] = {lib: [] for lib in calls}
    with limited_threads(threads):
        numbers = {lib: _warm_up(call, WARMUP_S, TIMING.block_min_s) for lib, call in calls.items()}
        for _ in range(rounds):
            for lib, call in calls.items():  # alternate, so a burst of other work hits every library alike
                figures[lib].append(_round(call, size, numbers[lib], TIMING.min_blocks))
    wall_s, other_s = time.perf_counter() - start, meter.other_cpu_s()
    per_library = {lib: _best_round(rows) for lib, rows in figures.items()}
    best = max(per_library, key=lambda lib: per_library[lib]["gflops"])
    return {
        "dtype": dtype,
        "threads": threads,
        "size": size,
        "gflops": per_library[best]["gflops"],
        "library": best,
        "method": f"best of {rounds} rounds' medians after a {WARMUP_S:g} s warm-up per library",
        "libraries": per_library,
        "host": socket.gethostname(),
        "measured_at_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": wall_s,
        "load_avg_1m": load,
        "other_cpu_s": other_s,
        "loaded": is_loaded(other_s, wall_s),
    }


def is_loaded(other_cpu_s: float, wall_s: float) -> bool:
    """Whether other processes used more than LOADED_OTHER_CPU cores on average over ``wall_s``."""
    return bool(other_cpu_s > LOADED_OTHER_CPU * wall_s)


def _best_round(rounds: list[dict]) -> dict:
    """A library's figure: its best round, with every round's median and their spread (max/min - 1)."""
    medians = [r["gflops"] for r in rounds]
    best = rounds[int(np.argmax(medians))]
    return {**best, "gflops_rounds": medians, "rounds_spread": max(medians) / min(medians) - 1}


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("gflops", 0) > 0 else None


def gemm_peak(dtype: str, threads: int, cache_dir: Path | str | None = None, size: int | None = None) -> dict[str, Any]:
    """The peak record for (this host, dtype, threads): read from ``cache_dir`` if there, else measured (and cached)."""
    if cache_dir is None:
        return measure_peak(dtype, threads, size)
    path = cache_path(cache_dir, dtype, threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _read(path)
    if record is not None:
        return record
    with exclusive(path, LOCK_TIMEOUT_S):
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
