"""Timing a forward pass the way ``torch.utils.benchmark``'s adaptive_autorange does.

A cold first call is timed on its own; ``warmup`` calls are discarded; the block size (calls
per clock read) grows until a block lasts ``block_min_s``, so the timer's own overhead is
negligible; blocks are then collected until ``min_run_time_s`` has passed (and, with an
``iqr_target_frac``, until IQR/median falls under it or ``max_run_time_s`` runs out). The
garbage collector is off while blocks run, and ``sync`` is called before every clock read.
The clock is a parameter so that tests can drive the method with a fake one.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnexp.config import TimingConfig

Clock = Callable[[], float]


@dataclass(frozen=True)
class Measurement:
    """Raw samples; every statistic is derived from them."""

    block_size: int  # calls per block
    block_times_s: tuple[float, ...]  # wall time of each block
    first_call_s: float  # the cold first call, never among the blocks

    @property
    def times_s(self) -> np.ndarray:
        """Seconds per call, one value per block."""
        return np.asarray(self.block_times_s) / self.block_size

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def iqr_s(self) -> float:
        q1, q3 = np.percentile(self.times_s, [25, 75])
        return float(q3 - q1)

    @property
    def n_blocks(self) -> int:
        return len(self.block_times_s)

    @property
    def n_runs(self) -> int:
        return self.n_blocks * self.block_size

    def columns(self, noisy_frac: float) -> dict[str, Any]:
        """The row's timing columns, in milliseconds."""
        t = self.times_s
        return {
            "time_median_ms": 1e3 * self.median_s,
            "time_iqr_ms": 1e3 * self.iqr_s,
            "time_min_ms": 1e3 * float(t.min()),
            "time_mean_ms": 1e3 * float(t.mean()),
            "n_runs": self.n_runs,
            "n_blocks": self.n_blocks,
            "block_size": self.block_size,
            "first_call_ms": 1e3 * self.first_call_s,
            "noisy": bool(self.iqr_s > noisy_frac * self.median_s),
        }


def _time_block(fn: Callable[[], Any], sync: Callable[[], None], number: int, clock: Clock) -> float:
    sync()
    start = clock()
    for _ in range(number):
        fn()
    sync()
    return clock() - start


def estimate_block_size(fn, sync, block_min_s: float, clock: Clock = time.perf_counter) -> int:
    """Calls per block so that one block lasts at least ``block_min_s`` (x10 while far off, then x2)."""
    number = 1
    while True:
        elapsed = _time_block(fn, sync, number, clock)
        if elapsed >= block_min_s:
            return number
        number *= 10 if elapsed < block_min_s / 10 else 2


def _done(blocks: list[float], elapsed: float, s: TimingConfig) -> bool:
    if len(blocks) < s.min_blocks or elapsed < s.min_run_time_s:
        return False
    if elapsed >= s.max_run_time_s or s.iqr_target_frac <= 0:
        return True
    q1, median, q3 = np.percentile(blocks, [25, 50, 75])
    return (q3 - q1) / median < s.iqr_target_frac


def measure(
    fn: Callable[[], Any],
    settings: TimingConfig,
    sync: Callable[[], None] = lambda: None,
    clock: Clock = time.perf_counter,
) -> tuple[Measurement, Any]:
    """Time ``fn``; return the measurement and the result of the cold first call."""
    sync()
    start = clock()
    result = fn()
    sync()
    first_call_s = clock() - start
    for _ in range(settings.warmup):
        fn()
    sync()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        number = estimate_block_size(fn, sync, settings.block_min_s, clock)
        blocks: list[float] = []
        start = clock()
        while not _done(blocks, clock() - start, settings):
            blocks.append(_time_block(fn, sync, number, clock))
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(number, tuple(blocks), first_call_s), result
