"""The other engines, onnxruntime and jax, against nn.RNN/LSTM/GRU's shapes and the float64 NumPy reference.

ONNX Runtime sessions cost milliseconds, so onnxruntime runs the whole grid. An XLA compile costs
~0.5 s per configuration here, so jax runs every cell x depth x direction in both dtypes, each with
one of the eight (batch_first, bias, batch_size) combinations in turn: every cell meets every value
of those three, and every combination is compiled in each dtype.
"""

import itertools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from rnnexp import backends, memory
from rnnexp.backends import jax_scan, onnxrt
from rnnexp.backends.numpy_ref import reference
from rnnexp.config import Cell, ConfigError, Device, Dtype, Mode, RunConfig, TimingConfig
from rnnexp.params import make_inputs, make_params
from rnnexp.runner import PARITY_TOL, JobContext, max_abs_err, parity, run_job
from test_backends import CELLS, LAYOUT_IDS, LAYOUTS, config, run_backend, torch_outputs

PJRT_NPROC_BEFORE = os.environ.get("PJRT_NPROC")  # before the jax_pool fixture pins XLA
ORT_CELLS = [c for c in CELLS if c != "lstm_proj"]  # ONNX's LSTM has no projection: refused, tested below
VARIANTS = list(itertools.product([True, False], [True, False], [1, 3]))  # batch_first, bias, batch_size
STRUCTURES = list(itertools.product(CELLS, [1, 2, 3], [False, True]))  # cell, layers, bidirectional


@pytest.fixture(scope="module", autouse=True)
def jax_pool():
    """XLA's CPU pool is made once per process: with 1 thread, as a threads=1 job makes it, before any test uses JAX."""
    return jax_scan.pin_threads(1)


def jax_cases() -> list:
    cases = []
    for dtype, shift in (("float32", 0), ("float64", 3)):
        for i, (cell, layers, bi) in enumerate(STRUCTURES):
            bf, bias, batch = VARIANTS[(i + shift) % len(VARIANTS)]
            layout = dict(layers=layers, bidirectional=bi, batch_first=bf, bias=bias, batch_size=batch)
            cases.append(pytest.param(layout, cell, dtype, id=f"{cell}-{dtype}-" + LAYOUT_IDS[LAYOUTS.index(layout)]))
    return cases


def check_against_referees(cfg: RunConfig) -> None:
    """Shapes and dtype as nn.RNN/LSTM/GRU return them; parity_ok against the reference; close to torch too."""
    got = run_backend(cfg)
    want = torch_outputs(cfg)
    assert got.output.dtype == np.dtype(cfg.dtype.value)
    assert got.output.shape == want.output.shape and got.h_n.shape == want.h_n.shape
    assert (got.c_n is None) == (want.c_n is None)
    if got.c_n is not None:
        assert got.c_n.shape == want.c_n.shape
    verdict = parity(cfg, got, reference(cfg, make_params(cfg), make_inputs(cfg)))
    assert verdict["parity_ok"], verdict
    tol = PARITY_TOL[cfg.dtype.value]
    assert max_abs_err(got, want) <= (tol if cfg.dtype is Dtype.float64 else 2 * tol)


@pytest.mark.parametrize("cell", ORT_CELLS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_onnxruntime_matches_torch_and_reference(layout, cell):
    check_against_referees(config(layout, cell, "float32", backend="onnxruntime"))


@pytest.mark.parametrize(("layout", "cell", "dtype"), jax_cases())
def test_jax_matches_torch_and_reference(layout, cell, dtype):
    check_against_referees(config(layout, cell, dtype, backend="jax"))


def test_jax_cases_meet_every_variant():
    cases = [(c.values[1], c.values[2], c.values[0]) for c in jax_cases()]  # cell, dtype, layout
    for cell, dtype in itertools.product(CELLS, ("float32", "float64")):
        layouts = [layout for c, d, layout in cases if (c, d) == (cell, dtype)]
        for key, values in (("batch_first", {True, False}), ("bias", {True, False}), ("batch_size", {1, 3})):
            assert {layout[key] for layout in layouts} == values, (cell, dtype, key)
    for dtype in ("float32", "float64"):
        combos = {(lay["batch_first"], lay["bias"], lay["batch_size"]) for _, d, lay in cases if d == dtype}
        assert combos == set(VARIANTS)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_onnx_gate_order_matters(cell, monkeypatch):
    """A model built with PyTorch's gate order unchanged computes something else: the reordering does work."""
    layout = dict(layers=2, bidirectional=True, batch_first=True, bias=True, batch_size=3)
    cfg = config(layout, cell, "float32", backend="onnxruntime")
    ref = reference(cfg, make_params(cfg), make_inputs(cfg))
    assert max_abs_err(run_backend(cfg), ref) <= PARITY_TOL["float32"]
    monkeypatch.setitem(onnxrt._GATE_BLOCKS, cfg.cell, tuple(range(len(onnxrt._GATE_BLOCKS[cfg.cell]))))
    assert max_abs_err(run_backend(cfg), ref) > 1e-3


# Refused combinations: one line, through the runner, before any work.
QUICK = TimingConfig(warmup=0, min_run_time_s=0.01, max_run_time_s=0.05, min_blocks=1, block_min_s=0.001)
REFUSED = [
    (
        dict(backend="onnxruntime", cell=Cell.lstm, proj_size=3),
        "ConfigError: proj_size=3: backend=onnxruntime: ONNX's LSTM has no projection (allowed: 0)",
    ),
    *[
        (
            dict(backend="onnxruntime", cell=cell, dtype=Dtype.float64),
            "ConfigError: dtype=float64: backend=onnxruntime: its CPU RNN/LSTM/GRU kernels run float32 only "
            "(allowed: float32)",
        )
        for cell in (Cell.rnn, Cell.lstm, Cell.gru)  # the linear cells are refused by backend first
    ],
    (
        dict(backend="onnxruntime", device=Device.cuda),
        "ConfigError: device=cuda: backend=onnxruntime runs on ONNX Runtime's CPU provider (allowed: cpu, auto)",
    ),
]


@pytest.fixture(scope="module")
def peak_dir(tmp_path_factory):
    """A GEMM peak cache filled beforehand (the figure is not under test): a job reads it instead of measuring."""
    from rnnexp import peak

    path = tmp_path_factory.mktemp("peak")
    for dtype in ("float32", "float64"):
        record = {"dtype": dtype, "threads": 1, "gflops": 1.0, "libraries": {}}
        peak.cache_path(path, dtype, 1).write_text(json.dumps(record))
    return path


@pytest.mark.parametrize(("overrides", "message"), REFUSED, ids=["proj", "f64-rnn", "f64-lstm", "f64-gru", "cuda"])
def test_refused_combinations_are_one_line_error_rows(overrides, message):
    row = run_job(RunConfig(timing=QUICK, **overrides)).row
    assert (row["status"], row["error"]) == ("error", message)
    assert "time_median_ms" not in row  # refused before any work


def test_onnx_kernels_really_refuse_float64():
    """The refusal is ONNX Runtime's, not a guess: a float64 session fails when asked to run each cell."""
    for cell in (Cell.rnn, Cell.lstm, Cell.gru):
        cfg = RunConfig(cell=cell, dtype=Dtype.float64, hidden_size=4, input_size=3, timesteps=2)
        with pytest.raises(Exception, match="(?i)implementation|double"):
            prepared = onnxrt.prepare(cfg, make_params(cfg), make_inputs(cfg))
            prepared.call()


def test_jax_refuses_other_threads_than_its_pool(peak_dir, jax_pool):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("threads=2 needs 2 cores (else the core check refuses it first)")
    pool = jax_scan.pool_threads()
    assert pool == jax_pool == 1
    other = 2
    row = run_job(RunConfig(backend="jax", threads=other, timing=QUICK), JobContext(peak_dir=peak_dir)).row
    assert row["status"] == "error"
    assert row["error"] == (
        f"ConfigError: threads={other}: this process's XLA CPU pool has {pool} threads, "
        f"fixed when JAX first ran here (use threads={pool})"
    )


def test_jax_without_a_gpu_refuses_device_cuda(peak_dir):
    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("a GPU is here")
    row = run_job(RunConfig(backend="jax", device=Device.cuda, timing=QUICK), JobContext(peak_dir=peak_dir)).row
    assert row["status"] == "error" and row["error"].startswith("ConfigError: device=cuda: JAX finds no GPU here")


@pytest.mark.parametrize(
    ("backend", "extra", "module"), [("onnxruntime", "onnx", "onnxruntime"), ("jax", "jax", "jax")]
)
def test_a_missing_extra_is_one_line_naming_pip(backend, extra, module, monkeypatch):
    monkeypatch.delitem(sys.modules, backends.module_of(backend))
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a package that is not installed
    with pytest.raises(ConfigError) as err:
        backends.load(backend)
    assert str(err.value) == f"backend={backend}: needs the {extra} extra: pip install 'rnnexp[{extra}]'"


def test_a_missing_backend_module_is_a_bug_not_a_setup_step(extra_backend):
    """A registry line naming no module, or a backend whose own import fails on a package its extra does not
    install, is ModuleNotFoundError (a bug), never the extra's pip line."""
    extra_backend(
        "broken_backend",
        "from rnnexp.backends import Backend\n"
        'BACKEND = Backend(name="broken", extra="jax", packages=("jax", "jaxlib"))\n'
        "import no_such_dependency\n",
    )
    with pytest.raises(ModuleNotFoundError):
        backends.load("broken")
    extra_backend("rnnexp.backends.no_such_module")
    with pytest.raises(ModuleNotFoundError):
        backends.load("jax")


@pytest.mark.parametrize("backend", ["onnxruntime", "jax"])
def test_a_job_row_records_the_engine(backend, peak_dir):
    cfg = RunConfig(backend=backend, cell=Cell.gru, layers=2, bidirectional=True, batch_size=3, timing=QUICK)
    row = run_job(cfg, JobContext(peak_dir=peak_dir)).row
    assert row["status"] == "ok", row["error"]
    assert row["parity_ok"] and row["shape_ok"]
    assert row["compile_s"] > 0 and row["engine_threads"] == 1
    assert row["device_used"] == "cpu"
    if backend == "jax":
        assert row["jax_version"] == jax.__version__ and row["jaxlib_version"]
        assert row["peak_mem_method"] == "xla_memory_analysis"
        assert memory.activation_bytes(cfg) <= row["peak_mem_bytes"] <= memory.job_bytes_breakdown(cfg)["backend_phase"]
    else:
        assert row["onnxruntime_version"] and row["onnx_version"]
        assert row["peak_mem_method"] == "unmeasured_onnxruntime_arena" and row["peak_mem_bytes"] is None


def test_jax_compiles_in_prepare_not_in_a_timed_call():
    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event) if "compile" in event else None  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        cfg = RunConfig(backend="jax", cell=Cell.lstm, hidden_size=7, timesteps=5)
        prepared = jax_scan.prepare(cfg, make_params(cfg), make_inputs(cfg))
        assert compiles and prepared.compile_s > 0
        compiles.clear()
        with prepared.context():
            for _ in range(3):
                prepared.call()
            prepared.sync()
        assert compiles == []
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_x64_is_on_for_a_float64_job_only():
    cfg = RunConfig(backend="jax", dtype=Dtype.float64)
    prepared = jax_scan.prepare(cfg, make_params(cfg), make_inputs(cfg))
    with prepared.context():
        assert prepared.fetch(prepared.call()).output.dtype == np.float64
    assert jnp.zeros(1).dtype == jnp.float32  # outside the job, JAX is as it was
    single = RunConfig(backend="jax")
    prepared = jax_scan.prepare(single, make_params(single), make_inputs(single))
    with prepared.context():
        assert prepared.fetch(prepared.call()).output.dtype == np.float32


def test_jax_forward_is_differentiable():
    """forward is a pure function of (params, x): jax.grad runs through it (training builds on this)."""
    cfg = RunConfig(backend="jax", cell=Cell.lstm, layers=2, bidirectional=True, hidden_size=5, dtype=Dtype.float64)
    params, x = make_params(cfg), make_inputs(cfg)
    with jax.enable_x64(True):
        loss = jax.jit(lambda p: jnp.sum(jax_scan.forward(cfg, p, x)[0] ** 2))
        grads = jax.jit(jax.grad(loss))(params)
        step = 1e-6
        name = "weight_hh_l1_reverse"
        bumped = {**params, name: params[name].copy()}
        bumped[name][0, 0] += step
        numeric = (loss(bumped) - loss(params)) / step
    assert set(grads) == set(params)
    assert abs(float(grads[name][0, 0]) - float(numeric)) <= 1e-4 * max(1.0, abs(float(numeric)))


# Threads: each engine's own pool, checked by what the process does, in a fresh process per case.
THREAD_PROBE = """
import json, os, sys, time
from rnnexp import backends
from rnnexp.config import Cell, RunConfig
from rnnexp.params import make_inputs, make_params
from rnnexp.threads import limited_threads

backend, threads = sys.argv[1], int(sys.argv[2])
cfg = RunConfig(backend=backend, threads=threads, cell=Cell.lstm, input_size=256, hidden_size=256,
                batch_size=64, timesteps=50)
module = backends.load(backend)
backends.check_supported(cfg)
params, x = make_params(cfg), make_inputs(cfg)
before = len(os.listdir("/proc/self/task"))
with limited_threads(threads):
    prepared = module.prepare(cfg, params, x)
    added = len(os.listdir("/proc/self/task")) - before
    with prepared.context():
        prepared.call()
        prepared.sync()
        cpu, own, wall, calls = time.process_time(), time.thread_time(), time.perf_counter(), 0
        while time.perf_counter() - wall < 1.0:
            prepared.call()
            prepared.sync()
            calls += 1
        cpu, own, wall = time.process_time() - cpu, time.thread_time() - own, time.perf_counter() - wall
print(json.dumps({"cpu_per_wall": cpu / wall, "caller_share": own / cpu, "calls": calls, "added": added,
                  **prepared.extra}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["onnxruntime", "jax"])
def test_the_engine_keeps_to_its_threads(backend, threads):
    """Process CPU time over wall time during forwards stays within ``threads`` (never above: no oversubscription).

    A bound from above only: a busy machine lowers the ratio, and only an engine using more
    threads than it was given raises it past the count. The pool's own size is checked exactly.
    """
    if threads > len(os.sched_getaffinity(0)):
        pytest.skip(f"{threads} threads need {threads} cores")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PJRT_NPROC", None)
    done = subprocess.run(
        [sys.executable, "-c", THREAD_PROBE, backend, str(threads)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.splitlines()[-1])
    assert probe["calls"] >= 1
    assert probe["engine_threads"] == threads
    assert probe["cpu_per_wall"] <= threads + 0.25, probe
    if backend == "onnxruntime":
        assert probe["added"] == threads - 1, probe  # the intra-op pool: the calling thread is one of them
    if threads == 1:  # both compute on the calling thread (jax: its client dispatches inline)
        assert probe["caller_share"] > 0.8, probe


def test_jax_settings_are_restored_after_pinning(jax_pool):
    assert jax.config.values["jax_cpu_enable_async_dispatch"] is True
    assert os.environ.get("PJRT_NPROC") == PJRT_NPROC_BEFORE  # processes started later choose their own


TRAINING_LAYOUTS = [  # every cell, both dtypes, over layouts that between them take every value of every key
    dict(layers=2, bidirectional=True, batch_first=True, bias=True, batch_size=3),
    dict(layers=1, bidirectional=False, batch_first=False, bias=False, batch_size=1),
    dict(layers=3, bidirectional=False, batch_first=True, bias=False, batch_size=3),
]


@pytest.mark.parametrize("layout", TRAINING_LAYOUTS, ids=["L2-bi", "L1-tm-nobias", "L3-nobias"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", CELLS)
def test_jax_training_gradients_match_the_float64_reference(cell, dtype, layout):
    """jax.grad, a second automatic differentiation, against the hand-written float64 BPTT (numpy_ref.gradients)."""
    from rnnexp.backends.numpy_ref import gradients
    from rnnexp.backends.training import GRAD_PARITY_TOL, cotangents

    cfg = config(layout, cell, dtype, backend="jax", mode=Mode.training)
    params, x = make_params(cfg), make_inputs(cfg)
    cots = cotangents(cfg)
    prepared = jax_scan.prepare_training(cfg, params, x, *cots)
    ref = gradients(cfg, params, x, *cots)
    with prepared.context():
        out, grads = prepared.fetch(prepared.step())
        recording = prepared.forward()
        phase_grads = [prepared.fetch_grads(prepared.backward_data(recording)) for _ in range(2)]
        phase_grads += [prepared.fetch_grads(prepared.backward_weights(recording)) for _ in range(2)]
    assert set(grads) == set(ref) and set(phase_grads[0]) == {"x"} and set(phase_grads[2]) == set(ref) - {"x"}
    scale = max(1.0, *(float(np.max(np.abs(v))) for v in ref.values()))
    for got in (grads, *phase_grads):
        for name, value in got.items():
            assert value.shape == ref[name].shape, name
            assert np.max(np.abs(value - ref[name])) <= GRAD_PARITY_TOL[dtype] * scale, name
    assert out.output.shape == reference(cfg, params, x).output.shape
    assert prepared.compile_s is not None and prepared.compile_s > 0
