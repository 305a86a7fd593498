"""Every backend's training step: its outputs, its gradients against the float64 reference, its phases, its row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, sweep_table
from rnnexp import backends
from rnnexp.backends.numpy_ref import gradients, reference
from rnnexp.backends.training import (
    GRAD_PARITY_TOL,
    PHASES,
    cotangents,
    grad_parity,
    run_training,
)
from rnnexp.config import Cell, ConfigError, Dtype, Mode, RunConfig, TimingConfig
from rnnexp.memory import peak_forward_bytes, training_bytes_breakdown
from rnnexp.params import expected_c_n_shape, expected_h_n_shape, expected_output_shape, make_inputs, make_params
from rnnexp.runner import PARITY_TOL, max_abs_err
from rnnexp.validation import validate
from test_backends import CELLS

TRAINERS = ["numpy", "torch", "torch_cell"]
QUICK = TimingConfig(warmup=1, min_run_time_s=0.01, max_run_time_s=0.1, min_blocks=3, block_min_s=0.001)


def config(cell: str, backend: str, dtype: str = "float64", **extra) -> RunConfig:
    base = dict(hidden_size=6, input_size=4, batch_size=3, timesteps=7, layers=2, bidirectional=True)
    return RunConfig(**{**base, **CELLS[cell], "backend": backend, "dtype": Dtype(dtype), **extra})


def within(got: dict, ref: dict, dtype: str) -> bool:
    """Every gradient in ``got`` within the row's tolerance of the reference."""
    scale = max(1.0, *(float(np.abs(v).max()) for v in ref.values()))
    err = max(float(np.abs(np.asarray(v, np.float64) - ref[k]).max()) for k, v in got.items())
    return err <= GRAD_PARITY_TOL[dtype] * scale


def check_backend(cfg: RunConfig) -> None:
    params, x = make_params(cfg), make_inputs(cfg)
    cots = cotangents(cfg)
    prepared = backends.load(cfg.backend).prepare_training(cfg, params, x, *cots)
    ref = gradients(cfg, params, x, *cots)
    with prepared.context():
        out, grads = prepared.fetch(prepared.step())
        recorded = prepared.forward()
        data = [prepared.fetch_grads(prepared.backward_data(recorded)) for _ in range(2)]
        weights = [prepared.fetch_grads(prepared.backward_weights(recorded)) for _ in range(2)]
    # The step's forward is the forward: parity and shapes as in inference.
    assert out.output.shape == expected_output_shape(cfg) and out.h_n.shape == expected_h_n_shape(cfg)
    assert (None if out.c_n is None else out.c_n.shape) == expected_c_n_shape(cfg)
    assert max_abs_err(out, reference(cfg, params, x)) <= PARITY_TOL[cfg.dtype.value]
    # Every gradient, by name and shape, in the job's dtype, within tolerance of the reference.
    assert list(grads) == list(ref)
    assert all(grads[k].shape == ref[k].shape and grads[k].dtype == np.dtype(cfg.dtype.value) for k in ref)
    assert within(grads, ref, cfg.dtype.value)
    # The phases: each alone, callable again on the same recording with the same result.
    assert [list(d) for d in data] == [["x"], ["x"]] and [list(w) for w in weights] == [list(ref)[1:]] * 2
    assert np.array_equal(data[0]["x"], data[1]["x"])
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert within(data[0], ref, cfg.dtype.value) and within(weights[0], ref, cfg.dtype.value)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", TRAINERS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first", [True, False])
def test_training_step(cell, backend, dtype, batch_first):
    check_backend(config(cell, backend, dtype, batch_first=batch_first, bias=cell != "gru" or batch_first))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_torch_compile_training_step(cell, dtype):
    # Compiling forward and backward graphs costs seconds per config: one rich layout each.
    check_backend(config(cell, "torch_compile", dtype, batch_first=False, bias=cell != "gru"))


def test_cotangents_are_seeded_in_the_jobs_dtype_and_layout():
    cfg = config("lstm", "numpy", "float32", batch_first=True)
    d_output, d_h_n, d_c_n = cotangents(cfg)
    assert d_output.shape == expected_output_shape(cfg) and d_h_n.shape == expected_h_n_shape(cfg)
    assert d_c_n.shape == expected_c_n_shape(cfg)
    assert {a.dtype for a in (d_output, d_h_n, d_c_n)} == {np.dtype(np.float32)}
    again = cotangents(cfg)
    assert all(np.array_equal(a, b) for a, b in zip((d_output, d_h_n, d_c_n), again, strict=True))
    other = cotangents(config("lstm", "numpy", "float32", batch_first=True, seed=1))
    assert not np.array_equal(d_output, other[0])
    assert cotangents(config("gru", "numpy"))[2] is None
    # Their own stream: not the inputs' numbers.
    same_shape = config("rnn_tanh", "numpy", batch_first=True, input_size=6, hidden_size=3)
    assert not np.array_equal(cotangents(same_shape)[0], make_inputs(same_shape))


def test_grad_parity_fails_on_a_wrong_gradient():
    cfg = config("gru", "numpy")
    params, x = make_params(cfg), make_inputs(cfg)
    ref = gradients(cfg, params, x, *cotangents(cfg))
    assert grad_parity(cfg, [ref], ref)["grad_parity_ok"]
    wrong = {k: v.copy() for k, v in ref.items()}
    wrong["weight_hh_l1_reverse"][0, 0] += 1e-6
    cols = grad_parity(cfg, [ref, wrong], ref)
    assert not cols["grad_parity_ok"] and cols["grad_max_abs_err_vs_ref"] == pytest.approx(1e-6, rel=1e-6)
    with pytest.raises(ValueError, match="weight_ih_l0"):
        grad_parity(cfg, [{k: v for k, v in ref.items() if k != "weight_ih_l0"}], ref)
    with pytest.raises(ValueError, match="shape"):
        grad_parity(cfg, [ref, {"x": ref["x"][:1]}], ref)


@pytest.mark.parametrize("backend", TRAINERS)
def test_run_training_row(backend):
    cfg = config("lstm", backend, "float32", timing=QUICK, mode=Mode.training)
    heard: set[str] = set()
    run = run_training(cfg, make_params(cfg), make_inputs(cfg), progress=lambda phase: lambda _: heard.add(phase))
    cols = run.columns
    assert set(run.measurements) == set(PHASES) == heard
    for phase in ("fwd", "bwd_data", "bwd_weights"):
        assert cols[f"{phase}_time_median_ms"] > 0 and cols[f"{phase}_time_iqr_ms"] >= 0
    assert cols["time_median_ms"] == 1e3 * run.measurements["step"].median_s and cols["n_blocks"] >= 3
    assert cols["grad_parity_ok"] and 0 < cols["grad_max_abs_err_vs_ref"] <= cols["grad_parity_tol"]
    assert cols["bwd_flops"] > 0 and cols["saved_activation_bytes"] > 0
    assert run.peak_mem_bytes > 0
    assert list(run.grads) == ["x", *make_params(cfg)]
    assert run.out.output.shape == expected_output_shape(cfg)


def test_training_memory_grows_with_timesteps():
    # What the saved activations cost: one numpy step's peak, measured by tracemalloc, at 4x the steps.
    peaks = []
    for steps in (25, 100):
        cfg = RunConfig(cell=Cell.lstm, hidden_size=32, input_size=16, batch_size=8, timesteps=steps)
        prepared = backends.load("numpy").prepare_training(cfg, make_params(cfg), make_inputs(cfg), *cotangents(cfg))
        peaks.append(peak_forward_bytes(prepared.step, "cpu", "numpy"))
    assert peaks[1] > 3 * peaks[0]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_memory_estimate_bounds_what_training_holds(cell):
    # Measured peaks (tracemalloc for numpy and the float64 reference, torch's profiler for torch)
    # under the estimate's phases: the numbers that keep a job from being killed for memory.
    cfg = RunConfig(cell=Cell(cell), hidden_size=32, input_size=16, timesteps=40, batch_size=4, layers=2)
    cfg.bidirectional = True
    parts = training_bytes_breakdown(cfg)
    params, x = make_params(cfg), make_inputs(cfg)
    cots = cotangents(cfg)
    for backend in TRAINERS:
        prepared = backends.load(backend).prepare_training(cfg, params, x, *cots)
        with prepared.context():
            peak = peak_forward_bytes(prepared.step, "cpu", "numpy" if backend == "numpy" else "torch")
        assert 0 < peak <= parts["training_phase"], backend
    assert peak_forward_bytes(lambda: gradients(cfg, params, x, *cots)) <= parts["grad_reference_phase"]
    assert parts["held"] > 0


def test_a_backend_that_cannot_train_is_refused_in_one_line():
    cfg = RunConfig(backend="numpy_naive", mode=Mode.training)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert "\n" not in message and message.startswith("mode=training: backend=numpy_naive cannot train")
    for trainer in ("numpy", "torch", "torch_cell", "torch_compile"):
        assert trainer in message
        validate(RunConfig(backend=trainer, mode=Mode.training))  # the trainers are accepted


@pytest.mark.slow
def test_training_sweep_through_the_cli(tmp_path):
    cells, trainers = ["rnn", "lstm", "gru"], ["numpy", "torch", "torch_cell", "torch_compile", "jax"]
    args = ["-m", "mode=training", "timing=quick", "hidden_size=8", "timesteps=6", "batch_size=2"]
    done = run_cli([*args, f"cell={','.join(cells)}", f"backend={','.join(trainers)}"], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = sweep_table(tmp_path)
    assert len(table) == len(cells) * len(trainers) and set(table["status"]) == {"ok"}
    assert table["grad_parity_ok"].astype(str).eq("True").all() and table["parity_ok"].astype(str).eq("True").all()
    for phase in ("fwd", "bwd_data", "bwd_weights"):
        assert (table[f"{phase}_time_median_ms"] > 0).all()
    assert (table["bwd_flops"] > 0).all()
    samples = pd.read_csv(next((tmp_path / "outputs" / "multirun").glob("*/*/samples.csv")))
    assert set(samples["phase"]) == {"step", "fwd", "bwd_data", "bwd_weights"}


def test_presets_compose_in_training_mode():
    from conftest import make_config
    from rnnexp.plan import make_plan, read_argv

    def planned_jobs(argv: list[str]) -> list[list[str]]:
        return [job.overrides for job in make_plan(read_argv(argv)).jobs]

    jobs = planned_jobs(["-m", "+experiment=training"])
    assert len(jobs) == 3 * 5 * 2 * 2
    modes = {make_config(*job).mode for job in (jobs[0], jobs[1])}
    assert modes == {Mode.inference, Mode.training}
    for job in (jobs[1], jobs[-1]):
        validate(make_config(*job))
    # DeepBench's training benchmark: its kernels, in training mode, on backends that train.
    deepbench = planned_jobs(["-m", "+experiment=deepbench", "mode=training"])
    assert len(deepbench) == 104 and all("mode=training" in job for job in deepbench)
    cfg = make_config("+experiment=deepbench", "+deepbench=lstm_h512_n16_t25", "mode=training", "backend=torch")
    assert (cfg.mode, cfg.cell, cfg.hidden_size, cfg.batch_size, cfg.timesteps) == (
        Mode.training,
        Cell.lstm,
        512,
        16,
        25,
    )
    validate(cfg)


@pytest.mark.slow
def test_torch_compile_survives_a_sweeps_many_configurations_in_one_process():
    # Dynamo fails a fullgraph compile once one step function was compiled for 8 shapes or dtypes; a
    # sweep runs many more configurations than that in one process.
    from rnnexp.backends import torch_compile

    for hidden in range(2, 12):
        cfg = RunConfig(hidden_size=hidden, input_size=3, timesteps=2, backend="torch_compile")
        prepared = torch_compile.prepare(cfg, make_params(cfg), make_inputs(cfg))
        with prepared.context():
            out = prepared.fetch(prepared.call())
        assert out.h_n.shape == (1, 1, hidden)
