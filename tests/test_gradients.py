"""The float64 BPTT reference (numpy_ref.gradients) against torch.autograd and against central finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnexp.backends import numpy_grad
from rnnexp.backends.numpy_ref import forward, gradients
from rnnexp.backends.torch_nn import build_module
from rnnexp.backends.training import cotangents
from rnnexp.config import Cell, Dtype, Nonlinearity, RunConfig
from rnnexp.params import make_inputs, make_params, param_shapes
from test_backends import CELLS

# Depth, direction, batch layout and bias: every layout a gradient can take.
LAYOUTS = [
    dict(layers=layers, bidirectional=bi, batch_first=bf, bias=bias)
    for layers, bi, bf, bias in itertools.product([1, 2, 3], [False, True], [True, False], [True, False])
]
LAYOUT_IDS = ["L{layers}-bi{bidirectional:d}-bf{batch_first:d}-bias{bias:d}".format(**d) for d in LAYOUTS]
# T=500 on a few layouts that between them take every value of every layout key.
LONG_LAYOUTS = [LAYOUTS[0], LAYOUTS[7], LAYOUTS[10], LAYOUTS[21]]
REL_TOL = 1e-10  # of the largest gradient magnitude: the bar against torch.autograd in float64


def config(layout: dict, cell: str, timesteps: int, **extra) -> RunConfig:
    base = dict(hidden_size=6, input_size=4, batch_size=3, timesteps=timesteps, dtype=Dtype.float64)
    return RunConfig(**{**base, **layout, **CELLS[cell], **extra})


def autograd_gradients(cfg: RunConfig, params, x, d_output, d_h_n, d_c_n=None) -> dict[str, np.ndarray]:
    """The same vector-Jacobian product by torch.autograd through nn.RNN/LSTM/GRU (the external referee)."""
    module = build_module(cfg, params, torch.device("cpu"))
    xt = torch.from_numpy(x).requires_grad_(True)
    output, state = module(xt)
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    outs = [t for t in (output, h_n, c_n) if t is not None]
    cots = [torch.from_numpy(a) for a in (d_output, d_h_n, d_c_n) if a is not None]
    named = dict(module.named_parameters())
    grads = torch.autograd.grad(outs, [xt, *named.values()], cots)
    return dict(zip(["x", *named], [g.numpy() for g in grads], strict=True))


def check_against_autograd(cfg: RunConfig) -> float:
    """The reference's gradients against autograd's: same names in the same order, same shapes, within REL_TOL."""
    params, x = make_params(cfg), make_inputs(cfg)
    cots = cotangents(cfg)
    got, want = gradients(cfg, params, x, *cots), autograd_gradients(cfg, params, x, *cots)
    assert list(got) == list(want) == ["x", *param_shapes(cfg)]
    for name, value in want.items():
        assert got[name].shape == value.shape and got[name].dtype == np.float64, name
    scale = max(float(np.abs(v).max()) for v in want.values())
    err = max(float(np.abs(got[k] - want[k]).max()) for k in want)
    assert err <= REL_TOL * scale, (err, scale)
    return err


@pytest.mark.parametrize("timesteps", [1, 50])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
def test_reference_matches_autograd(layout, cell, timesteps):
    check_against_autograd(config(layout, cell, timesteps))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layout", LONG_LAYOUTS, ids=[LAYOUT_IDS[LAYOUTS.index(x)] for x in LONG_LAYOUTS])
def test_reference_matches_autograd_500_steps(layout, cell):
    check_against_autograd(config(layout, cell, 500))


@st.composite
def configs(draw) -> RunConfig:
    cell = draw(st.sampled_from([Cell.rnn, Cell.lstm, Cell.gru]))  # linear cells: tests/test_linear_grad.py
    hidden = draw(st.integers(1, 10))
    return RunConfig(
        cell=cell,
        input_size=draw(st.integers(1, 8)),
        hidden_size=hidden,
        layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        timesteps=draw(st.integers(1, 30)),
        batch_size=draw(st.integers(1, 4)),
        batch_first=draw(st.booleans()),
        bias=draw(st.booleans()),
        nonlinearity=draw(st.sampled_from(list(Nonlinearity))) if cell is Cell.rnn else Nonlinearity.tanh,
        proj_size=draw(st.integers(0, hidden - 1)) if cell is Cell.lstm else 0,
        dtype=Dtype.float64,
        seed=draw(st.integers(0, 2**31)),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_random_configurations_match_autograd(cfg):
    check_against_autograd(cfg)


# Finite differences: tiny sizes, float64, every gradient element. Central differences with step
# EPS have truncation error ~EPS^2 and rounding error ~1e-16 * |L| / EPS: both near 1e-10 here.
EPS = 1e-5
FD_CASES = {
    "rnn_tanh": dict(layers=2, bidirectional=True, batch_first=True),
    "rnn_relu": dict(layers=1, bidirectional=True, batch_first=False),
    "lstm": dict(layers=2, bidirectional=True, batch_first=False),
    "lstm_proj": dict(layers=2, bidirectional=False, batch_first=True),
    "gru": dict(layers=2, bidirectional=True, batch_first=True),
}


def loss(cfg: RunConfig, params, x, d_output, d_h_n, d_c_n) -> float:
    """L on numpy_ref.forward, the forward that is not the tape's: the check leans on nothing of numpy_grad."""
    out = forward(cfg, params, x)
    total = np.sum(out.output * d_output) + np.sum(out.h_n * d_h_n)
    return float(total + (np.sum(out.c_n * d_c_n) if d_c_n is not None else 0.0))


def central_differences(cfg: RunConfig, params, x, cots) -> dict[str, np.ndarray]:
    values = {"x": x, **params}
    grads = {}
    for name, value in values.items():
        g = np.empty_like(value)
        for idx in np.ndindex(value.shape):
            keep = value[idx]
            value[idx] = keep + EPS
            up = loss(cfg, params, x, *cots)
            value[idx] = keep - EPS
            down = loss(cfg, params, x, *cots)
            value[idx] = keep
            g[idx] = (up - down) / (2 * EPS)
        grads[name] = g
    return grads


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", FD_CASES)
def test_reference_matches_finite_differences(cell, bias):
    cfg = RunConfig(
        hidden_size=4, input_size=3, batch_size=2, timesteps=5, dtype=Dtype.float64, bias=bias, **FD_CASES[cell],
        **{**CELLS[cell], **({"proj_size": 2} if cell == "lstm_proj" else {})},
    )  # fmt: skip
    params, x = make_params(cfg), make_inputs(cfg)
    cots = cotangents(cfg)
    got = gradients(cfg, params, x, *cots)
    want = central_differences(cfg, params, x, cots)
    assert list(got) == list(want)
    for name in want:
        err = float(np.abs(got[name] - want[name]).max())
        assert err <= 1e-6 * float(np.abs(want[name]).max()), (name, err)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_step_vjp_chained_gives_the_input_gradient(cell, bidirectional):
    # One layer: dL/dx is the sum over directions of each step's dL/d(input_t), chaining step_vjp from the end.
    cfg = config(dict(layers=1, bidirectional=bidirectional, batch_first=True, bias=True), cell, 9)
    params, x = make_params(cfg), make_inputs(cfg)
    d_output, d_h_n, d_c_n = cotangents(cfg)
    net = numpy_grad.prepare_weights(cfg, params)
    rec = numpy_grad.record(cfg, net, x)
    dy, ho = d_output.swapaxes(0, 1), d_output.shape[-1] // (2 if bidirectional else 1)
    dx = np.zeros((cfg.timesteps, cfg.batch_size, cfg.input_size))
    for d, tape in enumerate(rec.tapes[0]):
        dh, dc = d_h_n[d], None if d_c_n is None else d_c_n[d]
        steps = range(cfg.timesteps) if d else reversed(range(cfg.timesteps))
        for t in steps:
            dh, dc, dx_t = numpy_grad.step_vjp(cfg, net[0][d], tape, t, dh + dy[t, :, d * ho : (d + 1) * ho], dc)
            dx[t] += dx_t
    want = gradients(cfg, params, x, d_output, d_h_n, d_c_n)["x"]
    np.testing.assert_allclose(dx.swapaxes(0, 1), want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_recording_forward_is_the_reference_forward(cell):
    cfg = config(dict(layers=2, bidirectional=True, batch_first=True, bias=True), cell, 11)
    params, x = make_params(cfg), make_inputs(cfg)
    rec = numpy_grad.record(cfg, numpy_grad.prepare_weights(cfg, params), x)
    ref = forward(cfg, params, x)
    for got, want in [(rec.outputs.output, ref.output), (rec.outputs.h_n, ref.h_n), (rec.outputs.c_n, ref.c_n)]:
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saved_bytes_is_what_a_recording_holds(cell, dtype):
    cfg = config(dict(layers=2, bidirectional=True, batch_first=True, bias=True), cell, 13, dtype=Dtype(dtype))
    rec = numpy_grad.record(cfg, numpy_grad.prepare_weights(cfg, make_params(cfg)), make_inputs(cfg))
    arrays = {id(a): a for row in rec.tapes for tape in row for a in (tape.inp, tape.out)}
    held = sum(a.nbytes for a in arrays.values()) + sum(tape.nbytes for row in rec.tapes for tape in row)
    assert numpy_grad.saved_bytes(cfg) == held


def test_gradients_upcast_what_they_are_given():
    cfg = config(LAYOUTS[0], "lstm", 5, dtype=Dtype.float32)
    params, x = make_params(cfg), make_inputs(cfg)
    cots = cotangents(cfg)
    got = gradients(cfg, params, x, *cots)
    assert all(g.dtype == np.float64 for g in got.values())
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    want = gradients(cfg, p64, x.astype(np.float64), *(c.astype(np.float64) for c in cots))
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_reference_runs_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from rnnexp.backends.numpy_ref import gradients\n"
        "from rnnexp.backends.training import cotangents\n"
        "from rnnexp.config import RunConfig, Cell\n"
        "from rnnexp.params import make_inputs, make_params\n"
        "cfg = RunConfig(cell=Cell.gru, layers=2, bidirectional=True)\n"
        "g = gradients(cfg, make_params(cfg), make_inputs(cfg), *cotangents(cfg))\n"
        "print(sorted(g)[:2], 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['bias_hh_l0', 'bias_hh_l0_reverse'] False"
