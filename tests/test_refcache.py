"""The reference cache: bit-identical to a fresh reference, shared by jobs that differ only in how they run,
never used for another network, one entry however many processes want it."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnexp import refcache, runner, stats
from rnnexp.backends.numpy_ref import reference
from rnnexp.config import RunConfig, TimingConfig
from rnnexp.params import make_inputs, make_params

QUICK = TimingConfig(warmup=1, min_run_time_s=0.001, max_run_time_s=0.01, min_blocks=2, block_min_s=0.0001)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh():
    refcache.forget()
    yield
    refcache.forget()


def inputs(cfg: RunConfig):
    return make_params(cfg), make_inputs(cfg)


def assert_same(a: refcache.RefResult, b: refcache.RefResult) -> None:
    """Bit for bit: arrays, statistics (NaN equal to NaN) and tables with their dtypes."""
    for name in ("output", "h_n", "c_n"):
        x, y = getattr(a.outputs, name), getattr(b.outputs, name)
        assert (x is None and y is None) or (x.dtype == y.dtype and np.array_equal(x, y)), name
    assert a.stats.keys() == b.stats.keys()
    for k, v in a.stats.items():
        assert v == b.stats[k] or (math.isnan(v) and math.isnan(b.stats[k])), k
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)


@pytest.mark.parametrize(
    "overrides",
    [[], ["cell=lstm", "layers=2", "bidirectional=true", "proj_size=3"], ["cell=gru", "batch_first=false"]],
    ids=lambda o: "-".join(o) or "rnn",
)
def test_a_cached_reference_is_the_fresh_one_bit_for_bit(tmp_path, cfg_of, overrides):
    cfg = cfg_of(*overrides, "timesteps=9", "batch_size=2")
    params, x = inputs(cfg)
    fresh = reference(cfg, params, x)
    computed = refcache.reference_result(cfg, params, x, tmp_path)
    assert computed.source == "computed"
    for name in ("output", "h_n", "c_n"):
        want = getattr(fresh, name)
        assert want is None or np.array_equal(getattr(computed.outputs, name), want)
    # Its statistics are those of gates recomputed from the fresh reference (the c trajectory to rounding).
    want_row, want_table = stats.reference_stats(cfg, fresh, stats.count_gates(cfg, params, fresh, x))
    assert computed.stats == pytest.approx(want_row, rel=1e-13, nan_ok=True)
    pd.testing.assert_frame_equal(computed.tables["layer_stats.csv"], want_table)
    pd.testing.assert_frame_equal(computed.tables["steps.csv"], stats.step_table(cfg, fresh))
    from_memory = refcache.reference_result(cfg, params, x, tmp_path)
    refcache.forget()
    from_disk = refcache.reference_result(cfg, params, x, tmp_path)
    assert (from_memory.source, from_disk.source) == ("memory", "disk")
    assert_same(computed, from_memory)
    assert_same(computed, from_disk)


def test_jobs_differing_only_in_backend_threads_or_timing_share_one_entry(tmp_path, cfg_of, monkeypatch):
    computed = []
    real = refcache.compute
    monkeypatch.setattr(refcache, "compute", lambda *a, **k: computed.append(a[0].backend) or real(*a, **k))
    ctx = runner.JobContext(peak_dir=tmp_path, cache_dir=tmp_path / "cache")
    rows = []
    for backend, threads, timing in [("numpy", 1, "quick"), ("torch", 1, "quick"), ("torch_cell", 2, "default")]:
        cfg = cfg_of("cell=lstm", "layers=2", f"backend={backend}", f"threads={threads}", f"timing={timing}")
        refcache.forget()  # as if each job ran in its own process: only the disk entry is shared
        rows.append(runner.run_job(cfg, ctx).row)
    assert computed == ["numpy"]  # the first job made it; the others read it
    assert len(list((tmp_path / "cache").glob("ref_*.npz"))) == 1
    assert all(r["status"] == "ok" and r["parity_ok"] for r in rows)
    for col in ("c_abs_max", "gate_saturation_frac"):  # from the reference: the very same numbers
        assert rows[0][col] == rows[1][col] == rows[2][col]


def test_the_key_changes_with_the_network_and_not_with_how_it_runs(cfg_of):
    base = cfg_of()
    key = refcache.reference_key(base, *inputs(base))
    same = [dataclasses.replace(base, backend="numpy", threads=2, timing=QUICK)]
    same.append(cfg_of("device=auto", "mode=training", "lyapunov_k=2", "grad_flow=true"))
    for cfg in same:
        assert refcache.reference_key(cfg, *inputs(cfg)) == key
    changed = ["hidden_size=9", "seed=1", "init_gain=1.5", "input_scale=2", "batch_first=false", "bias=false"]
    changed += ["dtype=float64", "nonlinearity=relu", "timesteps=11", "input_dist=ones", "init=orthogonal"]
    keys = {refcache.reference_key(cfg, *inputs(cfg)) for cfg in (cfg_of(o) for o in changed)}
    assert key not in keys and len(keys) == len(changed)


def test_the_key_reads_the_arrays_too(cfg_of):
    cfg = cfg_of()
    params, x = inputs(cfg)
    key = refcache.reference_key(cfg, params, x)
    x2 = x.copy()
    x2.flat[0] = np.nextafter(x2.flat[0], np.inf, dtype=x2.dtype)  # one ulp of one input
    assert refcache.reference_key(cfg, params, x2) != key


def test_an_entry_of_another_network_is_never_used(tmp_path, cfg_of):
    a, b = cfg_of("hidden_size=8"), cfg_of("hidden_size=8", "seed=1")
    result_a = refcache.reference_result(a, *inputs(a), tmp_path)
    key_b = refcache.reference_key(b, *inputs(b))
    (path_a,) = tmp_path.glob("ref_*.npz")
    path_a.rename(refcache.entry_path(tmp_path, key_b))  # a's entry under b's name
    refcache.forget()
    assert refcache.read_entry(refcache.entry_path(tmp_path, key_b), key_b) is None
    result_b = refcache.reference_result(b, *inputs(b), tmp_path)
    assert result_b.source == "computed"
    assert not np.array_equal(result_a.outputs.output, result_b.outputs.output)
    fresh = reference(b, *inputs(b))
    assert np.array_equal(result_b.outputs.output, fresh.output)


def test_a_corrupt_entry_is_recomputed_and_replaced(tmp_path, cfg_of):
    cfg = cfg_of("cell=gru")
    params, x = inputs(cfg)
    good = refcache.reference_result(cfg, params, x, tmp_path)
    (path,) = tmp_path.glob("ref_*.npz")
    path.write_bytes(path.read_bytes()[:100])  # cut short, as a full disk would leave it
    refcache.forget()
    again = refcache.reference_result(cfg, params, x, tmp_path)
    assert again.source == "computed"
    assert_same(good, again)
    refcache.forget()
    assert refcache.reference_result(cfg, params, x, tmp_path).source == "disk"


def test_entries_over_the_cap_are_not_written(tmp_path, cfg_of, monkeypatch):
    monkeypatch.setattr(refcache, "MAX_ENTRY_BYTES", 100)
    cfg = cfg_of()
    result = refcache.reference_result(cfg, *inputs(cfg), tmp_path)
    assert result.source == "computed" and result.nbytes() > 100
    assert list(tmp_path.iterdir()) == []
    assert refcache.reference_result(cfg, *inputs(cfg), tmp_path).source == "memory"  # the in-process copy still


def test_each_job_gets_its_own_tables_and_read_only_arrays(cfg_of):
    cfg = cfg_of()
    first = refcache.reference_result(cfg, *inputs(cfg))
    first.tables["steps.csv"].insert(0, "job_num", 3)  # what the CLI does to a job's tables
    first.stats["h_mean"] = 0.0
    second = refcache.reference_result(cfg, *inputs(cfg))
    assert second.source == "memory"
    assert "job_num" not in second.tables["steps.csv"] and "h_mean" not in second.stats
    with pytest.raises(ValueError):
        second.outputs.output[0] = 1.0


def test_only_the_last_result_is_kept_in_memory(cfg_of):
    a, b = cfg_of(), cfg_of("seed=2")
    refcache.reference_result(a, *inputs(a))
    refcache.reference_result(b, *inputs(b))
    assert refcache.reference_result(b, *inputs(b)).source == "memory"
    assert refcache.reference_result(a, *inputs(a)).source == "computed"


CONCURRENT = """
import sys
from rnnexp import refcache
from rnnexp.config import Cell, RunConfig
from rnnexp.params import make_inputs, make_params
cfg = RunConfig(cell=Cell.lstm, hidden_size=96, input_size=96, timesteps=400, batch_size=8, layers=2)
print(refcache.reference_result(cfg, make_params(cfg), make_inputs(cfg), sys.argv[1]).source)
"""


def test_concurrent_writers_make_one_entry(tmp_path):
    """Two processes wanting the same entry at once: one computes and writes it, the other waits and reads it."""
    env = {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", CONCURRENT, str(tmp_path)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert sorted(out.strip() for out, _ in outs) == ["computed", "disk"]
    names = [p.name for p in tmp_path.iterdir()]  # no lock or temp file left behind
    assert len(names) == 1 and names[0].startswith("ref_") and names[0].endswith(".npz")


def test_a_job_for_another_network_drops_the_kept_result_first(cfg_of):
    a = cfg_of()
    refcache.reference_result(a, *inputs(a))
    refcache.release_unless(cfg_of("backend=numpy", "threads=2"))  # the same network: kept
    assert refcache.reference_result(a, *inputs(a)).source == "memory"
    refcache.release_unless(cfg_of("hidden_size=9"))
    assert refcache.reference_result(a, *inputs(a)).source == "computed"
