"""The benchmark scripts in --quick mode, in a subprocess, so they cannot rot. Figures are not checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run_script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(ROOT / "benchmarks" / name), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_backends_quick(tmp_path):
    out = tmp_path / "backends.json"
    done = run_script("backends.py", "--quick", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout
    for start in (
        "gemm_peak float32 1t:",
        "medium (rnn, T=10",
        "  numpy ",
        "  numpy_naive ",
        "  torch ",
        "ratio numpy/torch:",
        "ratio numpy_naive/numpy:",
        "large (rnn, T=10",
        "large numpy peak_frac:",
        "repeatability medium torch:",
    ):
        assert any(line.startswith(start) for line in text.splitlines()), (start, text)
    figures = json.loads(out.read_text())
    assert figures["gemm_peak"]["gflops"] > 0
    assert set(figures["medium"]) == {"numpy", "numpy_naive", "torch"} and set(figures["large"]) == {"numpy", "torch"}
    assert figures["ratio_numpy_torch"] > 0 and figures["repeatability"]["diff"] >= 0
    assert all(fig["max_abs_err_vs_ref"] < 1e-3 for fig in figures["medium"].values())  # the runs were real


def test_gemm_peak_quick(tmp_path):
    done = run_script("gemm_peak.py", "--quick", "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["gemm_peak float32 1t", "gemm_peak float64 1t"]
    assert all("GFLOP/s" in line and "numpy" in line for line in lines)


def test_engines_quick(tmp_path):
    out = tmp_path / "engines.json"
    done = run_script("engines.py", "--quick", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    engines = ("numpy", "torch", "torch_compile", "onnxruntime", "jax")
    starts = ("gemm_peak float32 1t:", "medium (rnn, T=10", "large (rnn, T=10", "lstm_h512_n16_t25 (lstm", "ranking")
    for start in starts:
        assert any(line.startswith(start) for line in lines), (start, done.stdout)
    figures = json.loads(out.read_text())
    assert len(figures["results"]) == 8  # medium, large and the six DeepBench-small kernels
    for name, figs in figures["results"].items():
        assert set(figs) == set(engines), name
        for engine, fig in figs.items():
            assert "error" not in fig, (name, engine, fig)
            assert fig["max_abs_err_vs_ref"] < 1e-3 and fig["ratio_to_torch"] > 0  # the runs were real
    assert figures["results"]["medium"]["torch"]["ratio_to_torch"] == 1.0
    assert sorted(r["engine"] for r in figures["ranking"]) == sorted(engines)


def test_compare_false_alarms_quick(tmp_path):
    out = tmp_path / "compare.json"
    done = run_script("compare_false_alarms.py", "--quick", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("false alarms (quiet): ") for line in lines), done.stdout
    assert any(line.startswith("detected 2x slowdown (quiet): ") for line in lines), done.stdout
    figures = json.loads(out.read_text())
    assert figures["pairs"] == 1 and len(figures["ratios"]) == 1 and figures["ratios"][0] > 1  # NEW really ran slower


def test_training_quick(tmp_path):
    out = tmp_path / "training.json"
    done = run_script("training.py", "--quick", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for cell in ("rnn", "lstm", "gru"):
        for start in (f"{cell} training step (T=10", f"ratio numpy/torch {cell} step:", f"step >= forward {cell}:"):
            assert any(line.startswith(start) for line in lines), (start, done.stdout)
    for backend in ("numpy", "torch", "torch_cell", "torch_compile"):
        assert sum(line.startswith(f"  {backend} ") for line in lines) == 3, (backend, done.stdout)
    figures = json.loads(out.read_text())
    for fig in figures["cells"].values():
        assert fig["ratio_numpy_torch"] > 0
        for backend in fig["backends"].values():
            assert backend["grad_parity_ok"] and backend["grad_max_abs_err_vs_ref"] < 1e-3  # the runs were real
            assert min(backend[f"{p}_time_median_ms"] for p in ("fwd", "bwd_data", "bwd_weights")) > 0


def test_gemm_peak_spread_quick(tmp_path):
    done = run_script("gemm_peak.py", "--quick", "--threads", "1", "--dtype", "float32", "--spread", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["  run 1/2", "  run 2/2", "gemm_peak spread float32 1t"]
    assert "% over 2 runs" in lines[-1] and "target" in lines[-1]


def test_lean_jobs_quick(tmp_path):
    out = tmp_path / "lean.json"
    done = run_script("lean_jobs.py", "--quick", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(line.startswith("wall ") and "wall / timed" in line for line in done.stdout.splitlines())
    figures = json.loads(out.read_text())
    assert len(figures["jobs"]) == 4 and figures["timed_s"] > 0 and figures["ratio"] > 1
    assert all(0 < j["timed_s"] <= j["job_wall_s"] for j in figures["jobs"])
    assert [b["status"] for b in figures["breakdown"]] == ["ok", "ok"]
    assert {"timed", "reference", "statistics"} <= set(figures["breakdown"][0]["phases"])


def test_driver_memory_quick(tmp_path):
    out = tmp_path / "driver.json"
    done = run_script("driver_memory.py", "--quick", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("driver RSS over a 60-job sweep")
    figures = json.loads(out.read_text())
    assert figures["rss_mb_at_checkpoint"] > 0 and len(figures["rss_mb_every_tenth"]) == 10


def test_harness_profile_by_stage(tmp_path):
    done = run_script("harness_overhead.py", "--profile", "--jobs", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    table = lines[2 : next(i for i, line in enumerate(lines) if line.startswith("wall")) + 1]
    rows = {line[:15].strip(): line[15:].split() for line in table}
    stages = ["imports", "plan", "compose", "hydra run_job", "validate", "prepare", "time", "memory pass",
              "reference", "statistics", "row", "write", "gather", "driver, other", "wall"]  # fmt: skip
    assert all(stage in rows for stage in stages), lines
    assert all(float(rows[stage][0]) > 0 for stage in ["imports", "compose", "time", "write", "gather"]), rows
    parts = sum(float(cells[0]) for stage, cells in rows.items() if stage != "wall")
    assert abs(parts - float(rows["wall"][0])) <= 0.02 + 0.01 * parts  # every second charged once
    assert any("cProfile, the 15 functions" in line for line in lines)
