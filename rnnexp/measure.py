"""Timing a forward pass by the method of ``torch.utils.benchmark``'s blocked_autorange / adaptive_autorange.

1. The cold first call is timed on its own (``first_call_s``); then ``warmup`` calls are discarded.
2. The timer's own overhead (an empty block: sync and two clock reads) is measured, median of 5.
3. The block size (calls per clock read) grows, x10 while a block is under a tenth of its target
   and x2 after, until a block lasts ``block_min_s`` and the overhead is under ``MAX_OVERHEAD_FRAC``
   of it (torch's rule, with a finer last step), or a block alone fills ``min_run_time_s``.
4. Blocks are collected until ``min_blocks`` are in and their summed time reaches ``min_run_time_s``;
   with ``iqr_target_frac`` > 0, on until IQR/median of the blocks falls under it (checked from 4
   blocks on, as torch) or the summed time reaches ``max_run_time_s``. ``min_blocks`` is a floor
   that ``max_run_time_s`` does not cut: a job slower than max_run_time_s / min_blocks runs longer.

The garbage collector is off throughout (as ``timeit`` does), ``sync`` is called right before
every clock read, and the clock is a parameter so that tests can drive all of this with a fake one.
Statistics follow ``torch.utils.benchmark.Measurement``: per-call times are block times / block
size; median and quartiles interpolate linearly; a measurement is noisy when IQR/median is not
under the threshold (torch warns from 10%).

Beside the block times a measurement keeps ``timed_s`` (wall seconds of everything above, the cold
call to the last block) and the process's CPU seconds over the blocks, whose ratio to their wall
time (``cpu_util``) is about the thread count when the thread pools obey their pinning. Optional
hooks: ``probe`` runs the last warm-up call (one extra untimed call without warm-ups), so a job
can watch that call (its peak memory) without paying for another; ``progress`` hears after every
call or block outside the clock reads, so a long job can say how far it is.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rnnexp.backends import noop
from rnnexp.config import TimingConfig

Clock = Callable[[], float]

MAX_OVERHEAD_FRAC = 1e-3  # timer overhead / block time, at most (torch's docstring: 0.1%)
MAX_BLOCK_SIZE = 2**31 - 1  # torch's cap, against a function too fast for the clock
MIN_BLOCK_S = 1e-9  # a block never reads as less (torch's floor; keeps median > 0)
MIN_BLOCKS_FOR_IQR = 4  # quartiles of fewer blocks mean little (torch: len(times) > 3)


@dataclass(frozen=True)
class Measurement:
    """Raw samples; every statistic is derived from them."""

    block_size: int  # calls per block
    block_times_s: tuple[float, ...]  # wall time of each block
    first_call_s: float  # the cold first call, never among the blocks
    overhead_s: float = 0.0  # one empty block: what the timer adds to each block, not subtracted
    timed_s: float = 0.0  # wall seconds from the cold call's start to the last block's end
    blocks_cpu_s: float = 0.0  # this process's CPU seconds (every thread) while the blocks ran
    blocks_wall_s: float = 0.0  # wall seconds while the blocks ran (their sum plus the timer's reads)

    @property
    def times_s(self) -> np.ndarray:
        """Seconds per call, one value per block."""
        return np.asarray(self.block_times_s, dtype=np.float64) / self.block_size

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def iqr_s(self) -> float:
        q1, q3 = np.percentile(self.times_s, [25, 75])
        return float(q3 - q1)

    @property
    def min_s(self) -> float:
        return float(self.times_s.min())

    @property
    def mean_s(self) -> float:
        return float(self.times_s.mean())

    @property
    def n_blocks(self) -> int:
        return len(self.block_times_s)

    @property
    def n_runs(self) -> int:
        return self.n_blocks * self.block_size

    @property
    def cpu_util(self) -> float:
        """CPU seconds per wall second over the blocks: ~threads when pinning holds; NaN if unknown."""
        return self.blocks_cpu_s / self.blocks_wall_s if self.blocks_wall_s > 0 else float("nan")

    def is_noisy(self, noisy_frac: float) -> bool:
        """IQR/median not under ``noisy_frac`` (torch's meets_confidence, negated)."""
        return not self.iqr_s < noisy_frac * self.median_s

    def columns(self, noisy_frac: float) -> dict[str, Any]:
        """The row's timing columns, in milliseconds."""
        return {
            "time_median_ms": 1e3 * self.median_s,
            "time_iqr_ms": 1e3 * self.iqr_s,
            "time_min_ms": 1e3 * self.min_s,
            "time_mean_ms": 1e3 * self.mean_s,
            "n_runs": self.n_runs,
            "n_blocks": self.n_blocks,
            "block_size": self.block_size,
            "first_call_ms": 1e3 * self.first_call_s,
            "noisy": self.is_noisy(noisy_frac),
        }


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    """The garbage collector off for the duration, restored to its former state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_block(fn: Callable[[], Any], sync: Callable[[], None], number: int, clock: Clock) -> float:
    """Seconds for ``number`` calls of ``fn``, device synchronised before each of the two clock reads."""
    sync()
    start = clock()
    for _ in range(number):
        fn()
    sync()
    return max(clock() - start, MIN_BLOCK_S)


def estimate_overhead(sync: Callable[[], None], clock: Clock = time.perf_counter, repeats: int = 5) -> float:
    """Median seconds of an empty block (sync and two clock reads): what timing adds to every block."""
    return float(np.median([time_block(noop, sync, 0, clock) for _ in range(repeats)]))


def estimate_block_size(
    fn: Callable[[], Any],
    sync: Callable[[], None],
    block_min_s: float,
    clock: Clock = time.perf_counter,
    overhead_s: float = 0.0,
    max_block_s: float = float("inf"),
) -> int:
    """Calls per block so that a block lasts ``block_min_s`` and ``overhead_s`` is under MAX_OVERHEAD_FRAC of it.

    Grows x10 while a block is under a tenth of that target, x2 after; stops early once one block
    alone lasts ``max_block_s`` (the whole run's budget) or at MAX_BLOCK_SIZE calls.
    """
    target = max(block_min_s, overhead_s / MAX_OVERHEAD_FRAC)
    number = 1
    while True:
        elapsed = time_block(fn, sync, number, clock)
        if elapsed >= target or elapsed >= max_block_s or number >= MAX_BLOCK_SIZE:
            return number
        number = min(MAX_BLOCK_SIZE, number * (10 if elapsed < target / 10 else 2))


def enough_blocks(blocks: list[float] | tuple[float, ...], s: TimingConfig) -> bool:
    """The stopping rule (module docstring, step 4) on the block times so far."""
    total = sum(blocks)
    if len(blocks) < s.min_blocks or total < s.min_run_time_s:
        return False
    if s.iqr_target_frac <= 0 or total >= s.max_run_time_s:
        return True
    if len(blocks) < MIN_BLOCKS_FOR_IQR:
        return False
    q1, median, q3 = np.percentile(blocks, [25, 50, 75])
    return bool((q3 - q1) < s.iqr_target_frac * median)


@dataclass(frozen=True)
class Progress:
    """Where a measurement stands, for a progress report (``measure``'s ``progress`` hook)."""

    stage: str  # "cold", "warmup", "sizing" or "blocks": what has just finished
    elapsed_s: float  # since the cold call started, on the measurement's clock
    blocks_done: int = 0
    blocks_expected: int = 0  # the stopping rule's floor, from the blocks' mean length so far; 0 before sizing
    block_size: int = 0


def expected_blocks(blocks: list[float], s: TimingConfig) -> int:
    """Blocks the stopping rule needs at least: min_blocks, or more to fill min_run_time_s at their mean length."""
    if not blocks:
        return s.min_blocks
    return max(s.min_blocks, math.ceil(s.min_run_time_s / max(float(np.mean(blocks)), MIN_BLOCK_S)))


def measure(
    fn: Callable[[], Any],
    settings: TimingConfig,
    sync: Callable[[], None] = noop,
    clock: Clock = time.perf_counter,
    progress: Callable[[Progress], None] | None = None,
    probe: Callable[[Callable[[], Any]], Any] | None = None,
    cpu_clock: Clock = time.process_time,
) -> tuple[Measurement, Any]:
    """Time ``fn``; return the measurement and the result of the cold first call.

    ``probe(fn)`` makes the last warm-up call (an extra one when ``settings.warmup`` is 0); it must
    call ``fn`` once. ``progress`` is called after each stage and block, never inside a clock read.
    """

    def now() -> float:  # every clock read follows a sync, so the device's queued work is counted
        sync()
        return clock()

    def report(stage: str, done: int = 0, expected: int = 0, size: int = 0) -> None:
        if progress is not None:
            progress(Progress(stage, now() - start, done, expected, size))

    with gc_disabled():
        start = now()
        result = fn()
        first_call_s = now() - start
        report("cold")
        warmups = max(settings.warmup, 1 if probe else 0)
        for k in range(warmups):
            if probe is not None and k == warmups - 1:
                probe(fn)
            else:
                fn()
            report("warmup")
        overhead_s = estimate_overhead(sync, clock)
        number = estimate_block_size(fn, sync, settings.block_min_s, clock, overhead_s, settings.min_run_time_s)
        report("sizing", 0, settings.min_blocks, number)
        blocks: list[float] = []
        cpu0, wall0 = cpu_clock(), now()
        while not enough_blocks(blocks, settings):
            blocks.append(time_block(fn, sync, number, clock))
            report("blocks", len(blocks), expected_blocks(blocks, settings), number)
        end = now()
        cpu_s = cpu_clock() - cpu0
    meas = Measurement(number, tuple(blocks), first_call_s, overhead_s, end - start, cpu_s, end - wall0)
    return meas, result


SAMPLE_COLUMNS = ("phase", "block", "block_size", "block_time_s")


def samples_table(measurements: dict[str, Measurement]) -> pd.DataFrame:
    """Every measurement's raw blocks, long form: one row per (phase, block); per-call time = block_time_s / block_size.

    >>> samples_table({"forward": Measurement(2, (0.5, 0.25), 1.0)}).to_dict("list")["block_time_s"]
    [0.5, 0.25]
    """
    frames = [
        pd.DataFrame(
            {
                "phase": phase,
                "block": np.arange(m.n_blocks),
                "block_size": m.block_size,
                "block_time_s": np.asarray(m.block_times_s, dtype=np.float64),
            }
        )
        for phase, m in measurements.items()
    ]
    if not frames:
        return pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(SAMPLE_COLUMNS)]
