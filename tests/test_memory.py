"""Memory figures against known array sizes, and the job estimate against measured peaks."""

from __future__ import annotations

import itertools
import json
import tracemalloc

import numpy as np
import pytest

from rnnexp import backends, memory
from rnnexp.config import Cell, Dtype, Mode, RunConfig, TimingConfig
from rnnexp.params import make_inputs, make_params

MB = 1_000_000
MARGIN = 64 * 1024  # Python objects and allocator bookkeeping around a measured call

CONFIGS = [
    RunConfig(
        cell=Cell(cell), proj_size=proj, layers=layers, bidirectional=bi, batch_first=bf, bias=bias, dtype=Dtype(dt)
    )
    for (cell, proj), layers, bi, bf, bias, dt in itertools.product(
        [("rnn", 0), ("lstm", 0), ("lstm", 3), ("gru", 0)],
        [1, 2],
        [False, True],
        [True, False],
        [True, False],
        ["float32", "float64"],
    )
]


def cfg_id(c: RunConfig) -> str:
    layout = f"L{c.layers}-bi{c.bidirectional:d}-bf{c.batch_first:d}-b{c.bias:d}"
    return f"{c.cell.value}-p{c.proj_size}-{layout}-{c.dtype.value}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_param_bytes_is_the_parameters_size(cfg):
    assert memory.param_bytes(cfg) == sum(p.nbytes for p in make_params(cfg).values())


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_activation_bytes_is_the_outputs_size(cfg):
    params, x = make_params(cfg), make_inputs(cfg)
    out = backends.load("numpy").prepare(cfg, params, x).call()
    real = out.output.nbytes + out.h_n.nbytes + (out.c_n.nbytes if out.c_n is not None else 0)
    assert memory.activation_bytes(cfg) == real
    assert memory.input_bytes(cfg) == x.nbytes


def test_sizes_by_hand():
    # rnn, I=5, H=8, float32: weights 8*5 + 8*8, biases 8 + 8 -> 120 values; T=10, B=1 output 80 + h_n 8
    cfg = RunConfig()
    assert memory.param_bytes(cfg) == 120 * 4
    assert memory.activation_bytes(cfg) == (80 + 8) * 4


# --- peak_forward_bytes -----------------------------------------------------------------------


def test_tracemalloc_peak_of_a_known_array():
    peak = memory.peak_forward_bytes(lambda: np.ones(MB // 8), "cpu", "numpy")  # 1 MB of float64
    assert MB <= peak <= MB + MARGIN


def test_tracemalloc_peak_is_the_largest_moment_not_the_sum():
    def call():
        a = np.ones(MB // 8)  # 1 MB
        b = np.ones(MB // 4)  # 2 MB: 3 MB held together
        del a, b
        return np.ones(MB // 16)  # 0.5 MB

    assert 3 * MB <= memory.peak_forward_bytes(call) <= 3 * MB + MARGIN


def test_memory_held_before_the_call_is_not_counted():
    held = np.ones(4 * MB // 8)  # 4 MB allocated before; freed during the call
    box = [held]
    del held

    def call():
        box.clear()
        return np.ones(MB // 8)

    assert MB <= memory.peak_forward_bytes(call) <= MB + MARGIN


def test_tracemalloc_is_left_as_found():
    memory.peak_forward_bytes(lambda: None)
    assert not tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        memory.peak_forward_bytes(lambda: None)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_torch_profiler_peak_of_known_tensors():
    torch = pytest.importorskip("torch")

    def call():
        a = torch.ones(MB // 8, dtype=torch.float64)  # 1 MB
        b = torch.ones(MB // 4, dtype=torch.float64)  # 2 MB
        del a
        c = torch.ones(MB // 8, dtype=torch.float64)  # 1 MB: 3 MB held at most
        del c
        return b

    peak = memory.peak_forward_bytes(call, "cpu", "torch")
    assert 3 * MB <= peak <= 3 * MB + MARGIN


def test_peak_of_events():
    events = [(1, 0xA, 100), (2, 0xB, 50), (3, 0xA, -100), (4, 0xC, 30), (5, 0xD, -999), (6, 0xB, -50)]
    assert memory.peak_of_events(events) == 150  # 0xD was never seen allocated: its free is ignored
    assert memory.peak_of_events(list(reversed(events))) == 150  # sorted by time


def test_cuda_peak():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    peak = memory.peak_forward_bytes(lambda: torch.ones(MB // 4, device="cuda"), "cuda", "torch")
    assert MB <= peak <= MB + 2 * 1024 * 1024  # the caching allocator rounds up to its block sizes


def test_methods():
    assert memory.framework_of("numpy_naive") == "numpy" and memory.framework_of("torch_cell") == "torch"
    assert memory.peak_method("cpu", "numpy") == "tracemalloc"
    assert memory.peak_method("cpu", "torch") == "torch_profiler"
    assert memory.peak_method("cuda", "torch") == "cuda_max_memory_allocated"
    assert memory.peak_method("cpu", "jax") == memory.peak_method("cuda", "jax") == "xla_memory_analysis"
    assert memory.peak_method("cpu", "onnxruntime") == "unmeasured_onnxruntime_arena"


# --- estimate_job_bytes -----------------------------------------------------------------------

QUICK = TimingConfig(warmup=0, min_run_time_s=0.001, max_run_time_s=0.01, min_blocks=1, block_min_s=0.0001)
JOBS = [
    RunConfig(
        cell=Cell(c),
        input_size=i,
        hidden_size=h,
        timesteps=t,
        batch_size=b,
        layers=layers,
        bidirectional=bi,
        proj_size=h // 4 if c == "lstm" and bi else 0,
        dtype=Dtype(dt),
        backend=backend,
        timing=QUICK,
    )
    for c, (t, b, i, h), layers, bi, dt, backend in [
        ("rnn", (50, 4, 300, 64), 1, False, "float32", "numpy"),
        ("lstm", (50, 4, 300, 64), 1, False, "float32", "numpy"),
        ("gru", (50, 4, 300, 64), 3, True, "float64", "numpy_naive"),
        ("lstm", (60, 8, 32, 128), 2, True, "float32", "numpy"),
        ("rnn", (20, 16, 16, 256), 3, True, "float64", "numpy"),
        ("gru", (100, 8, 64, 128), 1, False, "float32", "numpy"),
        ("rnn", (3, 1, 5, 8), 1, False, "float32", "numpy"),
    ]
]


@pytest.fixture(scope="module")
def peak_dir(tmp_path_factory):
    """A GEMM peak cache filled beforehand: a sweep measures the peak once, not in each job."""
    from rnnexp import peak

    path = tmp_path_factory.mktemp("peak")
    for dtype in ("float32", "float64"):
        record = {"dtype": dtype, "threads": 1, "gflops": 1.0, "libraries": {}}
        peak.cache_path(path, dtype, 1).write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("cfg", JOBS, ids=cfg_id)
def test_estimate_bounds_a_real_job(cfg, peak_dir, monkeypatch):
    # A NumPy job is seen whole by tracemalloc: weights, inputs, forward, reference, statistics, parity.
    from rnnexp import runner

    # The job's own peak measurement would reset tracemalloc's peak under this test; call once instead.
    monkeypatch.setattr(runner, "peak_forward_bytes", lambda call, *args: call() and 0)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        runner.execute(cfg, runner.JobContext(peak_dir=peak_dir))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = memory.estimate_job_bytes(cfg)
    assert peak - start <= estimate
    assert estimate <= 4 * (peak - start) + memory.FIXED_BYTES  # an upper bound, not a wild one


@pytest.mark.parametrize("backend", ["numpy", "torch", "torch_cell"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_backend_phase_bounds_the_forward(cell, backend):
    if backend != "numpy":
        pytest.importorskip("torch")
    cfg = RunConfig(
        cell=Cell(cell), input_size=64, hidden_size=128, timesteps=40, batch_size=8, layers=2, backend=backend
    )
    prepared = backends.load(backend).prepare(cfg, make_params(cfg), make_inputs(cfg))
    with prepared.context():
        peak = memory.peak_forward_bytes(prepared.call, prepared.device, memory.framework_of(backend))
    assert memory.activation_bytes(cfg) <= peak + MARGIN  # it returns at least its outputs...
    assert peak <= memory.job_bytes_breakdown(cfg)["backend_phase"]  # ...and stays within the estimate


# --- deep stacks: what grows per layer and per step --------------------------------------------

PROBE = """
import sys
import psutil
from rnnexp import backends, memory
from rnnexp.config import RunConfig
from rnnexp.params import make_inputs, make_params

cfg = RunConfig(layers=int(sys.argv[1]), backend=sys.argv[2])
prepared = backends.load(cfg.backend).prepare(cfg, make_params(cfg), make_inputs(cfg))
def high_water():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

with prepared.context():
    prepared.call()
    before = psutil.Process().memory_info().rss
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # the high-water mark restarts from here
    memory.peak_forward_bytes(prepared.call, prepared.device, memory.framework_of(cfg.backend))
print(high_water() - before)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "torch_cell"])
def test_the_estimate_holds_what_measuring_a_deep_stack_holds(backend):
    # The profiler that measures a torch forward keeps an event per op: ~30 KiB per layer-step (the
    # module docstring's figures). Not ru_maxrss: Linux carries it over exec from the forked test
    # worker, whose own resident size it then reports; VmHWM, reset just before the call, is this call's.
    import subprocess
    import sys

    pytest.importorskip("torch")
    layers = 300
    proc = subprocess.run([sys.executable, "-c", PROBE, str(layers), backend], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    grown = int(proc.stdout.split()[-1])
    cfg = RunConfig(layers=layers, backend=backend)
    overhead = memory.overhead_bytes(cfg) - layers * memory.PER_LAYER_BYTES
    assert grown <= overhead + memory.FIXED_BYTES
    assert grown >= overhead / 4  # an upper bound, not a wild one


def test_the_estimate_grows_with_every_layer_step():
    small, deep = RunConfig(layers=1), RunConfig(layers=2000)
    grown = memory.estimate_job_bytes(deep) - memory.estimate_job_bytes(small)
    assert grown >= 1999 * 10 * backends.declared("torch").measure_bytes_per_step  # ~620 MB measured at 2,000 layers
    layers = 500 * memory.PER_LAYER_BYTES
    one_way = memory.overhead_bytes(RunConfig(layers=500)) - layers
    assert memory.overhead_bytes(RunConfig(layers=500, bidirectional=True)) - layers == 2 * one_way
    training = memory.overhead_bytes(RunConfig(layers=500, mode=Mode.training)) - layers
    assert training == memory.TRAINING_STEP_FACTOR * one_way  # the step's backward records more ops
    numpy = RunConfig(layers=2000, backend="numpy")
    assert memory.overhead_bytes(numpy) == 2000 * memory.PER_LAYER_BYTES  # tracemalloc holds nothing per step


def test_the_guard_refuses_a_stack_that_would_not_fit(monkeypatch):
    import types

    import psutil

    from rnnexp import runner
    from rnnexp.config import ConfigError

    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=16 * 2**30))
    runner.check_memory(RunConfig(layers=2000))  # ~0.7 GiB: fits
    with pytest.raises(ConfigError, match=r"^memory=.*GiB: needs about .* layers=100000\), only 16.0 GiB"):
        runner.check_memory(RunConfig(layers=100000))
