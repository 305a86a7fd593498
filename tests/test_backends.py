"""Every backend against torch.nn.RNN/LSTM/GRU (the external referee) and the float64 NumPy reference."""

import itertools

import numpy as np
import pytest
import torch

from rnnexp import backends
from rnnexp.backends.numpy_ref import forward, reference
from rnnexp.backends.torch_nn import build_module
from rnnexp.config import Cell, Dtype, Nonlinearity, RunConfig
from rnnexp.params import make_inputs, make_params
from rnnexp.runner import PARITY_TOL, max_abs_err

# Every layout a forward can take: depth, direction, batch layout, bias, batch size.
LAYOUTS = [
    dict(layers=layers, bidirectional=bi, batch_first=bf, bias=bias, batch_size=batch)
    for layers, bi, bf, bias, batch in itertools.product([1, 2, 3], [False, True], [True, False], [True, False], [1, 3])
]
LAYOUT_IDS = ["L{layers}-bi{bidirectional:d}-bf{batch_first:d}-bias{bias:d}-B{batch_size}".format(**d) for d in LAYOUTS]
CELLS = {
    "rnn_tanh": dict(cell=Cell.rnn),
    "rnn_relu": dict(cell=Cell.rnn, nonlinearity=Nonlinearity.relu),
    "lstm": dict(cell=Cell.lstm),
    "lstm_proj": dict(cell=Cell.lstm, proj_size=3),
    "gru": dict(cell=Cell.gru),
}
LOOP_BACKENDS = ["numpy", "numpy_naive", "torch", "torch_cell"]


def config(layout: dict, cell: str, dtype: str = "float64", **extra) -> RunConfig:
    return RunConfig(hidden_size=6, input_size=4, timesteps=7, dtype=Dtype(dtype), **layout, **CELLS[cell], **extra)


def run_backend(cfg: RunConfig) -> backends.Outputs:
    params, x = make_params(cfg), make_inputs(cfg)
    prepared = backends.load(cfg.backend).prepare(cfg, params, x)
    with prepared.context():
        return prepared.fetch(prepared.call())


def torch_outputs(cfg: RunConfig) -> backends.Outputs:
    params, x = make_params(cfg), make_inputs(cfg)
    with torch.inference_mode():
        out, state = build_module(cfg, params, torch.device("cpu"))(torch.from_numpy(x))
    h, c = state if isinstance(state, tuple) else (state, None)
    return backends.Outputs(*[t.numpy() if t is not None else None for t in (out, h, c)])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_numpy_reference_matches_torch_float64(layout, cell):
    cfg = config(layout, cell)
    params, x = make_params(cfg), make_inputs(cfg)
    got = forward(cfg, params, x)
    assert max_abs_err(got, torch_outputs(cfg)) <= 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", LOOP_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_backend_parity(layout, cell, backend, dtype):
    cfg = config(layout, cell, dtype, backend=backend)
    got = run_backend(cfg)
    assert got.output.dtype == np.dtype(dtype)
    ref = reference(cfg, make_params(cfg), make_inputs(cfg))
    tol = 1e-10 if dtype == "float64" else PARITY_TOL["float32"]
    assert max_abs_err(got, ref) <= tol
    assert max_abs_err(got, torch_outputs(cfg)) <= (tol if dtype == "float64" else 2 * tol)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_torch_compile_parity(cell, dtype):
    # Compiling costs about a second per config (more on inductor's first use), so one rich layout each.
    layout = dict(layers=2, bidirectional=True, batch_first=False, bias=cell != "gru", batch_size=3)
    cfg = config(layout, cell, dtype, backend="torch_compile")
    got = run_backend(cfg)
    tol = 1e-10 if dtype == "float64" else PARITY_TOL["float32"]
    assert max_abs_err(got, reference(cfg, make_params(cfg), make_inputs(cfg))) <= tol
    assert max_abs_err(got, torch_outputs(cfg)) <= (tol if dtype == "float64" else 2 * tol)


def test_registry_is_lazy():
    import subprocess
    import sys

    code = "import sys, rnnexp.backends as b; b.load('numpy'); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_registry_names():
    assert backends.names() == ["numpy", "numpy_naive", "torch", "torch_cell", "torch_compile", "onnxruntime", "jax"]
