"""Lyapunov exponents of the linear cells: time averages of ln|a_t|, against the QR method on Jacobians
formed by torch.autograd, and the LRU whose eigenvalues all have modulus r."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from rnnexp import dynamics
from rnnexp.config import Cell, ConfigError, Dtype, RunConfig
from rnnexp.linear import cells, lyapunov, ops
from rnnexp.params import make_inputs, make_params
from rnnexp.validation import validate

TORCH = ops.get("torch")


def config(cell: Cell, **kw) -> RunConfig:
    base = dict(cell=cell, input_size=3, hidden_size=3, timesteps=120, batch_size=2, dtype=Dtype.float64)
    base |= dict(lyapunov_k=2, lyapunov_warmup=20)
    if cell in (Cell.lru, Cell.s6):
        base["state_size"] = 2
    return RunConfig(**(base | kw))


def _step(cfg: RunConfig, params: dict, x_t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """The joint state (every layer, real coordinates) after one step, as one function for autograd."""
    out, u, at = [], x_t[None, None], 0
    for layer in range(cfg.layers):
        p = cells.part_params(cfg, params, layer, 0)
        a, b, aux = cells.coefficients(cfg, p, u, TORCH)
        n = lyapunov.element_count(cfg)
        prev = state[at : at + n]
        at += n
        if cfg.cell is Cell.lru:
            h = a[0, 0] * torch.complex(prev[0::2], prev[1::2]) + b[0, 0]
            out.append(torch.stack([h.real, h.imag], dim=1).reshape(-1))
            states = h[None, None]
        else:
            h = a[0, 0].reshape(-1) * prev + b[0, 0].reshape(-1)
            out.append(h)
            states = h.reshape(a.shape[2:])[None, None]
        u = cells.readout(cfg, p, u, states, aux, TORCH)
    return torch.cat(out)


def qr_exponents(cfg: RunConfig) -> np.ndarray:
    params = {k: torch.from_numpy(v) for k, v in make_params(cfg).items()}
    xs = torch.from_numpy(make_inputs(cfg)[0])  # the batch's first sequence (batch_first)
    state = torch.zeros(lyapunov.state_size(cfg), dtype=torch.float64)
    jacobians = []
    for x_t in xs:
        jacobians.append(torch.autograd.functional.jacobian(lambda s, x_t=x_t: _step(cfg, params, x_t, s), state))
        state = _step(cfg, params, x_t, state)
    frame = np.linalg.qr(np.random.default_rng(0).standard_normal((len(state), cfg.lyapunov_k)))[0].T
    maps = [lambda q, j=j.numpy(): q @ j.T for j in jacobians]
    return dynamics.lyapunov_qr(maps, frame, cfg.lyapunov_warmup)


@pytest.mark.parametrize(
    "cell, kw",
    [
        (Cell.mingru, {}),
        (Cell.mingru, {"layers": 2, "lyapunov_k": 6}),
        (Cell.minlstm, {"layers": 2, "lyapunov_k": 4}),
        (Cell.lru, {"r_min": 0.5, "r_max": 0.95, "lyapunov_k": 4}),
        (Cell.s6, {"layers": 2, "lyapunov_k": 5}),
    ],
)
def test_time_averages_agree_with_the_qr_method(cell, kw):
    # Finite windows: the QR frame aligns at rate exp(-gap * warmup), and a stack's off-diagonal blocks shift
    # the QR averages by O(1/n) over n averaged steps (measured <= 3e-3 at n = 350); both vanish as n grows.
    cfg = config(cell, **(kw | {"timesteps": 700, "lyapunov_warmup": 350}))
    p, x = make_params(cfg), make_inputs(cfg)
    row, table, _ = lyapunov.dynamics_columns(cfg, p, x)
    exact = table["exponent"].to_numpy()
    n = cfg.timesteps - cfg.lyapunov_warmup
    np.testing.assert_allclose(exact, qr_exponents(cfg), rtol=0, atol=2.0 / n)
    assert row["lyap_max"] == exact[0] and row["lyap_sum"] == pytest.approx(exact.sum())


@pytest.mark.parametrize("cell", [Cell.mingru, Cell.minlstm, Cell.s6])
def test_the_whole_spectrum_sums_to_the_qr_sum_exactly(cell):
    """Over any window the k = S exponents sum to the mean ln|det J_t|, whatever the frame's alignment."""
    cfg = config(cell, layers=2, timesteps=60, lyapunov_warmup=5)
    cfg.lyapunov_k = lyapunov.state_size(cfg)
    p, x = make_params(cfg), make_inputs(cfg)
    row, _, _ = lyapunov.dynamics_columns(cfg, p, x)
    assert row["lyap_sum"] == pytest.approx(qr_exponents(cfg).sum(), rel=1e-10)


@pytest.mark.parametrize("r", [0.3, 0.9, 0.999])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lru_on_a_circle_has_every_exponent_ln_r(r, bidirectional):
    cfg = config(Cell.lru, r_min=r, r_max=r, state_size=8, lyapunov_k=16, bidirectional=bidirectional)
    row, table, _ = lyapunov.dynamics_columns(cfg, make_params(cfg), make_inputs(cfg))
    np.testing.assert_allclose(table["exponent"], math.log(r), rtol=1e-12)
    assert len(table) == 16 * (2 if bidirectional else 1)
    assert row["jac_sigma_max_max"] == pytest.approx(r)
    assert row["lyap_dim"] == 0.0


def test_the_runner_dispatches_to_the_exact_exponents():
    cfg = config(Cell.lru, r_min=0.8, r_max=0.8)
    from rnnexp.backends.numpy_ref import reference

    p, x = make_params(cfg), make_inputs(cfg)
    row, table, grads = dynamics.dynamics_columns(cfg, p, x, reference(cfg, p, x))
    assert row["lyap_max"] == pytest.approx(math.log(0.8)) and grads.empty


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"grad_flow": True, "lyapunov_k": 0, "layers": 2, "bidirectional": True}, "grad_flow"),
        ({"lyapunov_k": 7}, "lyapunov_k"),  # mingru, H=3, one layer: 3 coordinates
        ({"layers": 2, "bidirectional": True}, "lyapunov_k"),
        ({"lyapunov_warmup": 120}, "lyapunov_warmup"),
    ],
)
def test_dynamics_refusals(kw, key):
    with pytest.raises(ConfigError) as info:
        validate(config(Cell.mingru, **kw))
    assert info.value.key == key


@pytest.mark.parametrize("bidirectional", [False, True])
def test_grad_flow_of_one_mingru_layer_is_the_product_of_its_gates(bidirectional):
    """L = <u, h_T>: dL/dh_t = u * a_{t+1} ... a_T for one layer, so ln||dL/dh_t|| is known in closed form."""
    cfg = config(Cell.mingru, timesteps=40, lyapunov_k=0, grad_flow=True, bidirectional=bidirectional)
    p, x = make_params(cfg), make_inputs(cfg)
    row, _, table = lyapunov.dynamics_columns(cfg, p, x)
    u = dynamics.unit_vector(cfg)
    logs = lyapunov.log_moduli(dataclasses.replace(cfg, lyapunov_k=1), p, x)  # ln|a_t|, processing order
    for d, name in enumerate(["forward", "reverse"][: 2 if bidirectional else 1]):
        la = logs[d]
        after = np.concatenate([np.cumsum(la[::-1], axis=0)[::-1][1:], np.zeros((1, la.shape[1]))])  # sum_{s>t}
        want = np.log(np.linalg.norm(u[d * 3 : (d + 1) * 3] * np.exp(after), axis=1))
        got = table[table["direction"] == name].sort_values("timestep")["grad_log_norm"].to_numpy()
        np.testing.assert_allclose(got, want if d == 0 else want[::-1], rtol=1e-10, atol=1e-12)
    assert np.isfinite(row["grad_norm_log_slope"]) and row["grad_norm_log_slope"] < 0
