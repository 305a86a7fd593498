"""The timer, driven by a fake clock: block growth, the stopping rule, statistics, gc and sync."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from rnnexp import measure as m
from rnnexp.config import TimingConfig


class FakeClock:
    """A clock that moves only when the timed function says so (plus ``tick`` per read).

    ``events`` logs every sync, clock read and call, so tests can check their order.
    """

    def __init__(self, costs=(0.001,), tick: float = 0.0):
        self.now = 0.0
        self.tick = tick
        self.costs = list(costs)  # cost of call k; the last one repeats
        self.calls = 0
        self.events: list[str] = []

    def __call__(self) -> float:
        self.events.append("clock")
        t = self.now
        self.now += self.tick
        return t

    def fn(self) -> int:
        self.events.append("call")
        self.now += self.costs[min(self.calls, len(self.costs) - 1)]
        self.calls += 1
        return self.calls

    def sync(self) -> None:
        self.events.append("sync")

    def block_sizes(self) -> list[int]:
        """Calls between each pair of (sync, clock) reads, in order: the sizes of the blocks timed."""
        sizes, inside, n = [], False, 0
        for a, b in zip(self.events, self.events[1:], strict=False):
            if a == "sync" and b == "clock":
                if inside:
                    sizes.append(n)
                inside, n = not inside, 0
            elif a == "call":
                n += 1
        return sizes


def settings(**kw) -> TimingConfig:
    base = dict(warmup=0, min_run_time_s=0.1, max_run_time_s=1.0, min_blocks=5, block_min_s=0.01, iqr_target_frac=0.0)
    return TimingConfig(**{**base, **kw})


# --- block growth ---------------------------------------------------------------------------


def test_block_size_grows_x10_then_x2_until_block_min():
    clock = FakeClock(costs=[0.0003])
    number = m.estimate_block_size(clock.fn, clock.sync, block_min_s=0.01, clock=clock)
    # 1 call = 0.3 ms < 1 ms (a tenth of 10 ms): x10; 10 calls = 3 ms: x2; 20 = 6 ms: x2; 40 = 12 ms >= 10 ms.
    assert clock.block_sizes() == [1, 10, 20, 40]
    assert number == 40


def test_block_size_is_one_for_a_slow_function():
    clock = FakeClock(costs=[0.05])
    assert m.estimate_block_size(clock.fn, clock.sync, block_min_s=0.01, clock=clock) == 1
    assert clock.calls == 1


def test_block_size_stops_when_one_block_fills_the_budget():
    # Overhead 1 ms would ask for 1 s blocks (0.1%); a block that alone lasts max_block_s ends the search.
    clock = FakeClock(costs=[0.03])
    number = m.estimate_block_size(clock.fn, clock.sync, 0.01, clock, overhead_s=1e-3, max_block_s=0.2)
    assert clock.block_sizes() == [1, 10]  # 30 ms < 100 ms: x10 -> 300 ms >= 0.2 s
    assert number == 10


def test_block_size_grows_until_overhead_is_negligible():
    # Each clock read costs 10 us: an empty block reads as 10 us, so blocks must reach 10 ms (0.1%).
    clock = FakeClock(costs=[0.0001], tick=1e-5)
    overhead = m.estimate_overhead(clock.sync, clock)
    assert overhead == pytest.approx(1e-5)
    clock.events.clear()
    number = m.estimate_block_size(clock.fn, clock.sync, block_min_s=0.001, clock=clock, overhead_s=overhead)
    assert number * 0.0001 + 1e-5 >= overhead / m.MAX_OVERHEAD_FRAC
    assert clock.block_sizes() == [1, 10, 20, 40, 80, 160]  # 16 ms: the first block >= 10 ms


def test_block_size_is_capped(monkeypatch):
    monkeypatch.setattr(m, "MAX_BLOCK_SIZE", 1000)
    clock = FakeClock(costs=[0.0])  # too fast for the clock: a block never reaches block_min_s
    assert m.estimate_block_size(clock.fn, clock.sync, block_min_s=0.01, clock=clock) == 1000


# --- stopping rule --------------------------------------------------------------------------


def test_min_blocks_is_a_floor():
    s = settings(min_blocks=5, min_run_time_s=0.1)
    assert not m.enough_blocks([1.0] * 4, s)  # 4 s of blocks, but only 4 blocks
    assert m.enough_blocks([1.0] * 5, s)


def test_min_run_time_is_a_floor():
    s = settings(min_blocks=2, min_run_time_s=0.5)  # binary fractions: sums are exact
    assert not m.enough_blocks([0.125] * 3, s)  # 0.375 s
    assert m.enough_blocks([0.125] * 4, s)  # 0.5 s


def test_without_iqr_target_stops_at_min_run_time():
    s = settings(min_blocks=2, min_run_time_s=0.1, iqr_target_frac=0.0)
    noisy = [0.01, 0.05] * 5  # IQR/median huge; no target, so it does not matter
    assert m.enough_blocks(noisy[:4], s)  # 0.12 s >= 0.1 s


def test_iqr_target_stops_early_when_quiet():
    s = settings(min_blocks=2, min_run_time_s=0.1, max_run_time_s=10.0, iqr_target_frac=0.05)
    assert m.enough_blocks([0.03, 0.03, 0.03, 0.03], s)  # IQR 0 < 5% of median


def test_iqr_target_keeps_going_until_max_run_time():
    s = settings(min_blocks=2, min_run_time_s=0.1, max_run_time_s=1.0, iqr_target_frac=0.05)
    blocks = [0.05, 0.1] * 6  # quartiles 0.05 / 0.1: IQR/median = 0.05/0.075 = 67%
    assert not m.enough_blocks(blocks[:4], s)  # 0.3 s, noisy
    assert not m.enough_blocks(blocks[:13], s)  # 0.9 s < max
    assert m.enough_blocks(blocks + [0.1], s)  # 1.0 s = max_run_time


def test_iqr_needs_four_blocks():
    s = settings(min_blocks=1, min_run_time_s=0.1, max_run_time_s=10.0, iqr_target_frac=0.5)
    assert not m.enough_blocks([0.2, 0.2, 0.2], s)  # 3 equal blocks: IQR 0, but too few to judge
    assert m.enough_blocks([0.2] * 4, s)


def test_measure_runs_the_stopping_rule_end_to_end():
    # Blocks alternate 10 and 30 ms per call: noisy for ever, so max_run_time ends it.
    clock = FakeClock(costs=[0.5, 0.02] + [0.01, 0.03] * 100)
    s = settings(warmup=0, min_blocks=3, min_run_time_s=0.1, max_run_time_s=0.3, block_min_s=0.01, iqr_target_frac=0.01)
    meas, first = m.measure(clock.fn, s, clock.sync, clock)
    assert first == 1  # the first call's own result
    assert meas.first_call_s == pytest.approx(0.5)
    assert meas.block_size == 1  # the estimation block (20 ms) >= 10 ms
    assert sum(meas.block_times_s) >= 0.3 and sum(meas.block_times_s[:-1]) < 0.3
    assert meas.block_times_s[:4] == pytest.approx((0.01, 0.03, 0.01, 0.03))


# --- measure(): calls, warm-up, gc, sync --------------------------------------------------------


def test_measure_call_count_and_blocks():
    clock = FakeClock(costs=[0.2, 0.004])
    s = settings(warmup=3, min_blocks=5, min_run_time_s=0.1, block_min_s=0.01)
    meas, _ = m.measure(clock.fn, s, clock.sync, clock)
    # estimation: 1 call (4 ms < 10 ms, >= 1 ms: x2), 2 calls (8 ms: x2), 4 calls (16 ms): block size 4
    assert meas.block_size == 4
    # 16 ms blocks: 7 of them reach 0.1 s (6 make 96 ms)
    assert meas.n_blocks == 7 and meas.n_runs == 28
    assert clock.calls == 1 + 3 + (1 + 2 + 4) + 28
    assert meas.median_s == pytest.approx(0.004)
    assert meas.overhead_s == m.MIN_BLOCK_S  # a fake clock that never ticks: the floor


def test_gc_is_off_while_timing_and_restored_after():
    seen = []
    clock = FakeClock(costs=[0.02])

    def fn():
        seen.append(gc.isenabled())
        return clock.fn()

    assert gc.isenabled()
    m.measure(fn, settings(warmup=2), clock.sync, clock)
    assert seen and not any(seen)
    assert gc.isenabled()
    gc.disable()
    try:
        m.measure(fn, settings(warmup=2), clock.sync, clock)
        assert not gc.isenabled()  # left as found
    finally:
        gc.enable()


def test_gc_is_restored_when_the_function_raises():
    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        m.measure(boom, settings())
    assert gc.isenabled()


def test_sync_comes_right_before_every_clock_read():
    clock = FakeClock(costs=[0.003])
    m.measure(clock.fn, settings(warmup=2, iqr_target_frac=0.05), clock.sync, clock)
    reads = [i for i, e in enumerate(clock.events) if e == "clock"]
    assert len(reads) > 10
    assert all(i > 0 and clock.events[i - 1] == "sync" for i in reads)


# --- statistics -------------------------------------------------------------------------------


def test_statistics_from_raw_blocks():
    # 5 blocks of 10 calls: per call 1, 2, 3, 4, 10 ms.
    meas = m.Measurement(block_size=10, block_times_s=(0.01, 0.02, 0.03, 0.04, 0.10), first_call_s=0.5)
    np.testing.assert_allclose(meas.times_s, [0.001, 0.002, 0.003, 0.004, 0.010])
    assert meas.median_s == pytest.approx(0.003)
    assert meas.iqr_s == pytest.approx(0.002)  # quartiles 2 and 4 ms (linear interpolation, as torch)
    assert meas.min_s == pytest.approx(0.001)
    assert meas.mean_s == pytest.approx(0.004)
    assert (meas.n_blocks, meas.n_runs) == (5, 50)
    cols = meas.columns(noisy_frac=0.1)
    assert cols["time_median_ms"] == pytest.approx(3.0)
    assert cols["time_iqr_ms"] == pytest.approx(2.0)
    assert cols["time_min_ms"] == pytest.approx(1.0)
    assert cols["time_mean_ms"] == pytest.approx(4.0)
    assert cols["first_call_ms"] == pytest.approx(500.0)
    assert (cols["n_runs"], cols["n_blocks"], cols["block_size"]) == (50, 5, 10)
    assert cols["noisy"] is True  # IQR/median = 67%


def test_quartiles_interpolate_between_blocks():
    meas = m.Measurement(block_size=1, block_times_s=(1.0, 2.0, 3.0, 4.0), first_call_s=0.0)
    assert meas.median_s == pytest.approx(2.5)
    assert meas.iqr_s == pytest.approx(3.25 - 1.75)


@pytest.mark.parametrize(
    "blocks, noisy",
    [
        ((1.0, 1.0, 1.0, 1.0), False),
        ((1.0, 1.0, 1.1, 1.1, 1.1), False),  # IQR 0.1 / median 1.1 = 9.1%
        ((1.0, 1.0, 1.0, 1.2, 1.2), True),  # IQR 0.2 / median 1.0 = 20%
    ],
)
def test_noisy_flag(blocks, noisy):
    meas = m.Measurement(block_size=1, block_times_s=blocks, first_call_s=0.0)
    assert meas.is_noisy(0.10) is noisy
    assert meas.columns(0.10)["noisy"] is noisy


def test_a_real_clock_gives_sane_figures():
    # No assertion on time itself: only that the real clock path runs and its figures are consistent.
    meas, result = m.measure(lambda: sum(range(100)), settings(min_run_time_s=0.01, block_min_s=0.001))
    assert result == 4950
    assert meas.n_blocks >= 5 and meas.block_size >= 1
    assert meas.min_s <= meas.median_s and meas.iqr_s >= 0


# --- what a measurement keeps beside its blocks ---------------------------------------------------


def test_timed_seconds_span_the_cold_call_to_the_last_block():
    clock = FakeClock(costs=[0.2, 0.004])
    meas, _ = m.measure(clock.fn, settings(warmup=3, min_blocks=5, min_run_time_s=0.1), clock.sync, clock)
    # cold 0.2 s, 3 warm-ups and 7 sizing calls at 4 ms, then 7 blocks of 16 ms (test_measure_call_count_and_blocks)
    assert meas.timed_s == pytest.approx(0.2 + 0.004 * (3 + 7) + 7 * 0.016)
    assert meas.blocks_wall_s == pytest.approx(sum(meas.block_times_s))


def test_cpu_util_is_cpu_seconds_per_wall_second_over_the_blocks():
    clock = FakeClock(costs=[0.01])
    cpu = FakeClock()  # a second fake: CPU time runs at 1.5x the wall clock while a call runs
    fn = lambda: (clock.fn(), setattr(cpu, "now", cpu.now + 0.015))  # noqa: E731
    meas, _ = m.measure(fn, settings(warmup=0, min_blocks=4, min_run_time_s=0.04), clock.sync, clock, cpu_clock=cpu)
    assert meas.cpu_util == pytest.approx(1.5)
    assert np.isnan(m.Measurement(1, (0.1,), 0.1).cpu_util)  # no record of CPU time: unknown, not 0


@pytest.mark.parametrize("warmup, calls", [(3, 3), (0, 1)])
def test_probe_makes_the_last_warmup_call(warmup, calls):
    clock = FakeClock(costs=[0.02])
    probed = []

    def probe(fn):
        probed.append(clock.calls)  # calls made before the probe's own
        return fn()

    m.measure(clock.fn, settings(warmup=warmup), clock.sync, clock, probe=probe)
    # The probe's call is the last warm-up (an extra untimed one without warm-ups): cold call, then the others.
    assert probed == [calls]
    assert clock.calls > calls + 1  # and the blocks came after it


def test_progress_hears_every_stage_and_block():
    clock = FakeClock(costs=[0.5, 0.004])
    seen: list[m.Progress] = []
    meas, _ = m.measure(clock.fn, settings(warmup=2, min_blocks=5, min_run_time_s=0.1), clock.sync, clock, seen.append)
    assert [p.stage for p in seen[:4]] == ["cold", "warmup", "warmup", "sizing"]
    blocks = [p for p in seen if p.stage == "blocks"]
    assert [p.blocks_done for p in blocks] == list(range(1, meas.n_blocks + 1))
    assert blocks[-1].blocks_expected == meas.n_blocks == 7  # ceil(0.1 s / 16 ms)
    assert seen[0].elapsed_s == pytest.approx(0.5)
    assert all(a.elapsed_s <= b.elapsed_s for a, b in zip(seen, seen[1:], strict=False))
    assert blocks[-1].elapsed_s == pytest.approx(meas.timed_s)


def test_expected_blocks():
    s = settings(min_blocks=5, min_run_time_s=1.0)
    assert m.expected_blocks([], s) == 5
    assert m.expected_blocks([0.5, 0.5], s) == 5  # min_blocks is the floor
    assert m.expected_blocks([0.05, 0.15], s) == 10  # 1 s at 0.1 s per block


def test_samples_table_has_one_row_per_block():
    fwd = m.Measurement(block_size=10, block_times_s=(0.01, 0.02, 0.03), first_call_s=0.5)
    bwd = m.Measurement(block_size=2, block_times_s=(0.4, 0.5), first_call_s=0.9)
    table = m.samples_table({"fwd": fwd, "bwd_data": bwd})
    assert list(table.columns) == ["phase", "block", "block_size", "block_time_s"]
    assert len(table) == fwd.n_blocks + bwd.n_blocks
    assert table.phase.tolist() == ["fwd"] * 3 + ["bwd_data"] * 2
    assert table.block.tolist() == [0, 1, 2, 0, 1]
    assert table.block_size.tolist() == [10, 10, 10, 2, 2]
    assert table.block_time_s.tolist() == [0.01, 0.02, 0.03, 0.4, 0.5]  # raw, not per call
    per_call = table.block_time_s / table.block_size
    np.testing.assert_allclose(per_call[:3], fwd.times_s)
    assert m.samples_table({}).columns.tolist() == ["phase", "block", "block_size", "block_time_s"]
