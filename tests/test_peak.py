"""The GEMM peak: positive, cached once per directory, safe with parallel writers. No timed assertions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rnnexp import fileio, peak

SMALL = 64  # tiny products: these tests check the plumbing, not the machine


@pytest.fixture
def fast(monkeypatch):
    """Small matrices and a short timing budget, so each measurement takes milliseconds."""
    monkeypatch.setattr(peak, "SIZE", SMALL)
    monkeypatch.setattr(
        peak, "TIMING", peak.TimingConfig(warmup=0, min_run_time_s=0.005, min_blocks=2, block_min_s=0.001)
    )
    monkeypatch.setattr(peak, "WARMUP_S", 0.001)
    monkeypatch.setattr(peak, "ROUNDS", 2)
    monkeypatch.setattr(peak, "libraries", lambda: ["numpy"])


def test_measure_gemm_is_positive():
    fig = peak.measure_gemm("float32", 1, size=SMALL, timing=peak.TimingConfig(min_run_time_s=0.005, block_min_s=0.001))
    assert fig["gflops"] > 0 and fig["gflops_best"] >= fig["gflops"]
    assert fig["n_runs"] >= 1


def test_measure_gemm_in_torch():
    pytest.importorskip("torch")
    fig = peak.measure_gemm("float64", 1, size=SMALL, library="torch", timing=peak.TimingConfig(min_run_time_s=0.005))
    assert fig["gflops"] > 0


def test_peak_is_cached_in_the_directory(tmp_path, monkeypatch, fast):
    first = peak.gemm_peak_gflops("float32", 1, tmp_path)
    assert first > 0
    record = json.loads(peak.cache_path(tmp_path, "float32", 1).read_text())
    assert record["gflops"] == first
    assert (record["dtype"], record["threads"], record["library"]) == ("float32", 1, "numpy")
    assert record["libraries"]["numpy"]["gflops"] == first

    def refuse(*args, **kwargs):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(peak, "measure_peak", refuse)
    assert peak.gemm_peak_gflops("float32", 1, tmp_path) == first
    assert [r["dtype"] for r in peak.cached_peaks(tmp_path)] == ["float32"]


def test_each_dtype_and_thread_count_has_its_own_entry(tmp_path, fast):
    peak.gemm_peak_gflops("float32", 1, tmp_path)
    peak.gemm_peak_gflops("float64", 1, tmp_path)
    peak.gemm_peak_gflops("float64", 2, tmp_path)
    names = sorted(p.name for p in tmp_path.glob("gemm_peak_*.json"))
    host = peak.host_name()
    assert names == [
        f"gemm_peak_{host}_float32_1t.json",
        f"gemm_peak_{host}_float64_1t.json",
        f"gemm_peak_{host}_float64_2t.json",
    ]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_corrupt_cache_is_measured_again(tmp_path, fast):
    peak.cache_path(tmp_path, "float32", 1).write_text("{not json")
    assert peak.gemm_peak_gflops("float32", 1, tmp_path) > 0
    assert json.loads(peak.cache_path(tmp_path, "float32", 1).read_text())["gflops"] > 0


def test_without_cache_dir_nothing_is_written(tmp_path, monkeypatch, fast):
    monkeypatch.chdir(tmp_path)
    assert peak.gemm_peak_gflops("float64", 1, None) > 0
    assert list(tmp_path.iterdir()) == []


def test_parallel_processes_share_one_measurement(tmp_path):
    code = (
        "import sys; from rnnexp import peak;"
        "peak.SIZE = 64; peak.libraries = lambda: ['numpy']; peak.WARMUP_S = 0.001; peak.ROUNDS = 2;"
        "peak.TIMING = peak.TimingConfig(warmup=0, min_run_time_s=0.05, min_blocks=2, block_min_s=0.001);"
        "rec = peak.gemm_peak('float32', 1, sys.argv[1]); print(rec['measured_at_utc'], rec['gflops'])"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1  # one process measured; the others waited on the lock and read its record
    record = json.loads(peak.cache_path(tmp_path, "float32", 1).read_text())
    assert f"{record['measured_at_utc']} {record['gflops']}" == outs[0]
    # No lock or temp file is left behind, and the record has the mode any new file gets (umask).
    assert sorted(p.name for p in tmp_path.iterdir()) == [peak.cache_path(tmp_path, "float32", 1).name]
    assert peak.cache_path(tmp_path, "float32", 1).stat().st_mode & 0o777 == 0o666 & ~fileio.umask()


def test_peak_frac():
    assert peak.peak_frac(45.0, 90.0) == 0.5
    assert peak.peak_frac(1.0, 0.0) != peak.peak_frac(1.0, 0.0)  # NaN


def test_the_record_says_how_and_under_what_load(monkeypatch, fast):
    monkeypatch.setattr(peak, "ROUNDS", 3)
    record = peak.measure_peak("float32", 1)
    lib = record["libraries"]["numpy"]
    assert len(lib["gflops_rounds"]) == 3 and lib["gflops"] == max(lib["gflops_rounds"])  # best of the rounds
    assert lib["rounds_spread"] == pytest.approx(max(lib["gflops_rounds"]) / min(lib["gflops_rounds"]) - 1)
    assert "best of 3 rounds" in record["method"]
    assert record["host"] and record["wall_s"] > 0 and record["other_cpu_s"] >= 0
    assert record["load_avg_1m"] is None or record["load_avg_1m"] >= 0
    assert record["loaded"] is peak.is_loaded(record["other_cpu_s"], record["wall_s"])


@pytest.mark.parametrize("other_s, loaded", [(0.0, False), (0.5, False), (0.6, True), (4.0, True)])
def test_loaded_when_other_processes_took_over_a_quarter_core(other_s, loaded):
    """Over a 2 s measurement, other processes' CPU beyond 0.5 s (a quarter core) marks the peak loaded."""
    assert peak.is_loaded(other_s, wall_s=2.0) is loaded


def test_each_host_has_its_own_entry(tmp_path, monkeypatch, fast):
    """A sweep on several nodes shares its dir: every node measures and keeps its own peak."""
    monkeypatch.setattr(peak.socket, "gethostname", lambda: "node-a")
    peak.gemm_peak_gflops("float32", 1, tmp_path)
    monkeypatch.setattr(peak.socket, "gethostname", lambda: "node/b")  # odd characters become _

    def measured(*args, **kwargs):
        return {"gflops": 1.0, "host": "node/b"}

    monkeypatch.setattr(peak, "measure_peak", measured)
    assert peak.gemm_peak_gflops("float32", 1, tmp_path) == 1.0  # node b did not read node a's record
    names = sorted(p.name for p in tmp_path.glob("gemm_peak_*.json"))
    assert names == ["gemm_peak_node-a_float32_1t.json", "gemm_peak_node_b_float32_1t.json"]
    assert {r["host"] for r in peak.cached_peaks(tmp_path)} == {"node-a", "node/b"}
