"""A job's row and side tables as the runner makes them: fixed statistic columns, layer_stats.csv,
samples.csv, load and provenance columns, peak memory on a warm-up call, the long-job log."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from rnnexp import memory, refcache, runner, stats
from rnnexp.config import Cell, RunConfig, TimingConfig
from rnnexp.measure import Progress

QUICK = TimingConfig(warmup=1, min_run_time_s=0.002, max_run_time_s=0.02, min_blocks=3, block_min_s=0.0005)
MARGIN = 64 * 1024  # Python objects around a measured call (tests/test_memory.py)


@pytest.fixture
def ctx(tmp_path):
    """A sweep's context with its GEMM peak already measured (a fake record: these tests time nothing)."""
    from rnnexp import peak

    for dtype in ("float32", "float64"):
        peak.write_json_atomic(peak.cache_path(tmp_path, dtype, 1), {"gflops": 100.0, "loaded": False})
    refcache.forget()
    yield runner.JobContext(peak_dir=tmp_path, cache_dir=tmp_path / "cache")
    refcache.forget()


def job(**kw) -> RunConfig:
    return RunConfig(timing=QUICK, **kw)


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(cell=Cell.lstm, layers=3, bidirectional=True, backend="numpy"), dict(cell=Cell.gru, layers=2)],
    ids=["rnn", "lstm-3-bi", "gru-2"],
)
def test_the_row_has_the_same_statistic_columns_whatever_the_network(ctx, kw):
    done = runner.run_job(job(**kw), ctx)
    assert done.row["status"] == "ok", done.row["error"]
    assert set(stats.ROW_COLUMNS) <= set(done.row)
    per_part = [c for c in done.row if c.endswith(("_forward", "_reverse")) or "_frac_" in c or "_l0" in c]
    assert per_part == []
    layers = done.tables["layer_stats.csv"]
    assert list(layers.columns) == list(stats.LAYER_STATS_COLUMNS)
    cfg = job(**kw)
    assert sorted(set(zip(layers.layer, layers.direction, strict=True))) == sorted(
        (k, d) for k in range(cfg.layers) for d in ("forward", "reverse")[: 2 if cfg.bidirectional else 1]
    )


def test_samples_has_one_row_per_timed_block(ctx):
    done = runner.run_job(job(), ctx)
    samples, row = done.tables["samples.csv"], done.row
    assert list(samples.columns) == ["phase", "block", "block_size", "block_time_s"]
    assert len(samples) == row["n_blocks"] and (samples.phase == "forward").all()
    assert samples.block.tolist() == list(range(row["n_blocks"]))
    assert (samples.block_size == row["block_size"]).all()
    per_call_ms = 1e3 * samples.block_time_s / samples.block_size
    assert per_call_ms.median() == pytest.approx(row["time_median_ms"])
    assert per_call_ms.min() == pytest.approx(row["time_min_ms"])


def test_rows_say_how_busy_the_machine_was_and_where_they_ran(ctx, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "977")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    row = runner.run_job(job(), ctx).row
    assert row["slurm_job_id"] == "977" and row["rnnexp_version"] and row["hostname"]
    assert row["load_avg_1m"] >= 0 and row["other_cpu_s"] >= 0
    assert 0 < row["timed_s"] <= row["job_wall_s"]
    assert row["first_call_ms"] / 1e3 <= row["timed_s"]
    assert row["cpu_util"] > 0  # CPU seconds per wall second of the blocks (~threads on a quiet machine)
    assert row["peak_gflops"] == 100.0 and row["peak_loaded"] is False


def test_an_error_row_has_the_load_columns_too(ctx):
    row = runner.run_job(job(hidden_size=0), ctx).row
    assert row["status"] == "error"
    assert row["job_wall_s"] >= 0 and row["other_cpu_s"] >= 0 and "load_avg_1m" in row and "slurm_job_id" in row


def test_a_rerun_that_ends_in_error_leaves_no_side_table_of_the_earlier_attempt(ctx, tmp_path):
    from rnnexp import results

    job_dir = tmp_path / "job"
    done = runner.run_job(job(), ctx)
    results.write_job(done.row, done.tables, job_dir, 3)
    assert {"samples.csv", "layer_stats.csv"} <= {p.name for p in job_dir.iterdir()}
    failed = runner.run_job(job(hidden_size=0), ctx)
    assert failed.tables == {}
    results.write_job(failed.row, failed.tables, job_dir, 3)
    assert sorted(p.name for p in job_dir.iterdir()) == ["results.csv"]


def test_a_jobs_files_are_whole_and_not_fsynced_the_sweeps_are(ctx, tmp_path, monkeypatch):
    """A job's files skip fsync (rnnexp.fileio: ~42 ms a job here); every other file rnnexp writes keeps it."""
    import os

    from rnnexp import fileio, results

    done = runner.run_job(job(), ctx)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    results.write_job(done.row, done.tables, tmp_path / "job", 3)
    names = sorted(p.name for p in (tmp_path / "job").iterdir())
    assert names == sorted(["results.csv", *done.tables]) and synced == []
    assert results.ok_row(tmp_path / "job") is not None and not list((tmp_path / "job").glob(".*.tmp"))
    fileio.write_text_atomic(tmp_path / "table.csv", "a\n1\n")
    assert len(synced) == 2  # the file, then its dir


def test_peak_loaded_follows_the_peak_record(ctx):
    from rnnexp import peak

    peak.write_json_atomic(peak.cache_path(ctx.peak_dir, "float32", 1), {"gflops": 80.0, "loaded": True})
    row = runner.run_job(job(), ctx).row
    assert row["peak_gflops"] == 80.0 and row["peak_loaded"] is True
    assert row["peak_frac"] == pytest.approx(row["gflops"] / 80.0)


@pytest.mark.parametrize("warmup", [0, 1, 3])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_peak_memory_measured_on_a_warmup_call_keeps_its_bounds(ctx, backend, warmup):
    """The figure tests/test_memory.py bounds for one call: at least the outputs, within the backend's estimate."""
    cfg = job(cell=Cell.gru, input_size=64, hidden_size=128, timesteps=40, batch_size=8, layers=2, backend=backend)
    cfg = dataclasses.replace(cfg, timing=dataclasses.replace(QUICK, warmup=warmup))
    row = runner.run_job(cfg, ctx).row
    assert row["status"] == "ok", row["error"]
    assert memory.activation_bytes(cfg) <= row["peak_mem_bytes"] + MARGIN
    assert row["peak_mem_bytes"] <= memory.job_bytes_breakdown(cfg)["backend_phase"]


def test_expected_forward_seconds_by_hand():
    cfg = RunConfig(timesteps=1000, layers=2, bidirectional=True, backend="numpy")
    flops = runner.forward_flops(cfg)
    # FLOPs at half of a 10 GFLOP/s peak, plus 10 us for each of 1000 steps x 2 layers x 2 directions
    assert runner.expected_forward_s(cfg, 10.0) == pytest.approx(flops / 5e9 + 4000 * 1e-5)
    cell = dataclasses.replace(cfg, backend="torch_cell")
    assert runner.expected_forward_s(cell, 10.0) == pytest.approx(flops / 5e9 + 4000 * 4e-5)
    assert runner.expected_forward_s(cfg, None) is None


def test_expected_timed_seconds():
    cfg = RunConfig(timing=TimingConfig(warmup=2, min_run_time_s=0.2, min_blocks=5, block_min_s=0.01))
    # a 3 s forward: cold + 2 warm-ups + 1 sizing call + 5 one-call blocks
    assert runner.expected_timed_s(cfg, 3.0) == pytest.approx(9 * 3.0)
    # a 1 ms forward: 3 calls, a 10 ms sizing block, then 0.2 s of blocks
    assert runner.expected_timed_s(cfg, 0.001) == pytest.approx(0.003 + 0.01 + 0.2)


def test_a_long_job_logs_its_estimate_before_timing(caplog):
    cfg = RunConfig(timesteps=2_000_000, backend="numpy")
    with caplog.at_level(logging.INFO, logger="rnnexp.runner"):
        runner.log_estimate(cfg, runner.expected_forward_s(cfg, 100.0))  # 20 s a forward: steps dominate
    (record,) = caplog.records
    assert "expected to run long" in record.getMessage() and "T=2000000" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rnnexp.runner"):
        runner.log_estimate(RunConfig(), runner.expected_forward_s(RunConfig(), 100.0))  # the tutorial: silent
    assert caplog.records == []


def test_progress_is_logged_at_most_every_ten_seconds(caplog):
    log = runner.ProgressLog("job")
    stages = [("cold", 4.0, 0, 0), ("warmup", 11.0, 0, 0), ("sizing", 15.0, 0, 5)]
    stages += [("blocks", t, k, 5) for k, t in enumerate([19.0, 23.0, 27.0, 31.0, 35.0], start=1)]
    with caplog.at_level(logging.INFO, logger="rnnexp.runner"):
        for stage, t, done, expected in stages:
            log(Progress(stage, t, done, expected, 1))
    lines = [r.getMessage() for r in caplog.records]
    # 11 s, then the first report 10 s later or more: 23 s, then 35 s
    assert lines == [
        "job: warming up, 11 s elapsed",
        "job: block 2/5 done (1 calls each), 23 s elapsed",
        "job: block 5/5 done (1 calls each), 35 s elapsed",
    ]


def test_a_long_job_is_not_silent(ctx, monkeypatch, caplog):
    """End to end with the thresholds lowered: the estimate, then progress lines while timing."""
    monkeypatch.setattr(runner, "LONG_JOB_S", 0.0)
    monkeypatch.setattr(runner, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(runner.ProgressLog.__init__, "__defaults__", (0.0,))
    with caplog.at_level(logging.INFO, logger="rnnexp.runner"):
        row = runner.run_job(job(), ctx).row
    lines = [r.getMessage() for r in caplog.records]
    assert "expected to run long" in lines[0]
    assert any("cold call done" in line for line in lines)
    assert sum("done (" in line for line in lines) == row["n_blocks"]


class Meter:
    def __init__(self, other_s: float):
        self.other_s = other_s

    def other_cpu_s(self) -> float:
        return self.other_s


@pytest.mark.parametrize(
    "threads, concurrent, other_s, want",
    [
        (1, 1, 0.0, 8),  # alone on an idle machine: every core
        (1, 1, 2.4, 8),  # others used 0.24 cores over 10 s: still idle
        (1, 1, 2.6, 1),  # 0.26 cores: loaded, the job's own threads
        (1, 2, 0.0, 1),  # another job beside it: its cores are not this job's to take
        (3, 4, 0.0, 3),
    ],
)
def test_reference_threads(monkeypatch, threads, concurrent, other_s, want):
    monkeypatch.setattr(runner, "usable_cores", lambda: 8)
    ctx = runner.JobContext(concurrent_jobs=concurrent)
    assert runner.reference_threads(RunConfig(threads=threads), ctx, Meter(other_s), elapsed_s=10.0) == want


def test_the_reference_runs_on_the_threads_chosen(ctx, monkeypatch):
    seen = []
    real = refcache.compute
    monkeypatch.setattr(refcache, "compute", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    monkeypatch.setattr(runner, "reference_threads", lambda *a: 5)
    runner.run_job(job(threads=1), ctx)
    assert seen == [5]
