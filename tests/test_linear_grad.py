"""Gradients of the linear cells: the hand-written float64 BPTT against torch.autograd and finite differences,
and mode=training through the real CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli
from rnnexp.backends.training import cotangents
from rnnexp.config import Cell, Dtype, RunConfig, Scan
from rnnexp.linear import grad, torch_backend
from rnnexp.params import make_inputs, make_params

LINEAR = [Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6]


def config(cell: Cell, **kw) -> RunConfig:
    base = dict(cell=cell, input_size=3, hidden_size=5, timesteps=7, batch_size=2, layers=2, bidirectional=True)
    base |= dict(dtype=Dtype.float64, state_size=3) if cell in (Cell.lru, Cell.s6) else dict(dtype=Dtype.float64)
    return RunConfig(**(base | kw))


def autograd(cfg, p, x, d_output, d_h_n) -> dict[str, np.ndarray]:
    leaves = {k: torch.from_numpy(v).requires_grad_(True) for k, v in p.items()}
    xt = torch.from_numpy(x).requires_grad_(True)
    out, h_n, _ = torch_backend.forward(cfg, leaves, xt)
    loss = (out * torch.from_numpy(d_output)).sum() + (h_n * torch.from_numpy(d_h_n)).sum()
    names = list(leaves)
    grads = torch.autograd.grad(loss, [xt, *(leaves[n] for n in names)])
    return dict(zip(["x", *names], (g.numpy() for g in grads), strict=True))


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("kw", [{}, {"batch_first": False}, {"bias": False, "layers": 1, "bidirectional": False}])
def test_bptt_matches_torch_autograd_in_float64(cell, kw):
    cfg = config(cell, **kw)
    p, x = make_params(cfg), make_inputs(cfg)
    d_output, d_h_n, _ = cotangents(cfg)
    got = grad.gradients(cfg, p, x, d_output, d_h_n)
    want = autograd(cfg, p, x, d_output, d_h_n)
    assert list(got) == list(want)
    for name, value in want.items():
        assert got[name].shape == value.shape
        assert np.abs(got[name] - value).max() <= 1e-10 * max(1.0, np.abs(value).max()), name


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("kind", [Scan.associative, Scan.chunked])
def test_every_scans_adjoint_gives_the_same_gradient(cell, kind):
    cfg = config(cell, timesteps=11, scan=kind, scan_chunk=3)
    p, x = make_params(cfg), make_inputs(cfg)
    d_output, d_h_n, _ = cotangents(cfg)
    ref = grad.gradients(cfg, p, x, d_output, d_h_n)
    got = grad.backward(cfg, p, grad.record(cfg, p, x), d_output, d_h_n)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=0, atol=1e-11 * max(1.0, np.abs(ref[name]).max()))


def _loss(cfg, p, x, d_output, d_h_n) -> float:
    out = grad.record(cfg, p, x)[0]
    return float((out.output * d_output).sum() + (out.h_n * d_h_n).sum())


@pytest.mark.parametrize("cell", LINEAR)
def test_bptt_matches_finite_differences(cell):
    cfg = config(cell, timesteps=5)
    p, x = make_params(cfg), make_inputs(cfg)
    d_output, d_h_n, _ = cotangents(cfg)
    got = grad.gradients(cfg, p, x, d_output, d_h_n)
    rng = np.random.default_rng(3)
    eps = 1e-6
    for name in ["x", *p]:
        target = x if name == "x" else p[name]
        for _ in range(2):
            idx = tuple(rng.integers(0, s) for s in target.shape)
            old = target[idx]
            target[idx] = old + eps
            up = _loss(cfg, p, x, d_output, d_h_n)
            target[idx] = old - eps
            down = _loss(cfg, p, x, d_output, d_h_n)
            target[idx] = old
            fd = (up - down) / (2 * eps)
            assert abs(got[name][idx] - fd) <= 1e-6 * max(1.0, abs(fd)), (name, idx)


@pytest.mark.slow
def test_training_rows_pass_gradient_parity(tmp_path):
    args = ["-m", "cell=mingru,lru,s6", "backend=numpy,torch", "scan=sequential,associative", "mode=training"]
    args += ["layers=2", "bidirectional=true", "timesteps=12", "hidden_size=4"]
    args += ["timing.min_run_time_s=0.01", "timing.max_run_time_s=0.05", "timing.min_blocks=1", "timing.warmup=0"]
    done = run_cli([*args, f"hydra.sweep.dir={tmp_path}/s"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "s" / "results.csv")
    assert len(table) == 12
    assert (table["status"] == "ok").all() and table["parity_ok"].all() and table["grad_parity_ok"].all()
    assert (table["bwd_flops"] > 0).all()


@pytest.mark.parametrize("cell", [Cell.mingru, Cell.minlstm])
@pytest.mark.parametrize("kind", list(Scan))
def test_log_space_bptt_matches_torch_autograd(cell, kind):
    cfg = config(cell, log_space=True, scan=kind, scan_chunk=3)
    p, x = make_params(cfg), make_inputs(cfg)
    x[:, :3] = 0.0  # zero inputs and biases: pre-activations exactly 0, on g's seam, where the right branch holds
    for name in p:
        if "bias" in name:
            p[name][:] = 0.0
    d_output, d_h_n, _ = cotangents(cfg)
    got = grad.backward(cfg, p, grad.record(cfg, p, x), d_output, d_h_n)
    want = autograd(cfg, p, x, d_output, d_h_n)
    for name, value in want.items():
        assert np.abs(got[name] - value).max() <= 1e-10 * max(1.0, np.abs(value).max()), name


@pytest.mark.parametrize("cell", [Cell.lru, Cell.s6])
def test_one_step_gives_zero_gradients_for_what_only_a_reaches(cell):
    from rnnexp.backends import torch_nn

    cfg = config(cell, timesteps=1, dtype=Dtype.float32)
    p, x = make_params(cfg), make_inputs(cfg)
    d_output, d_h_n, _ = cotangents(cfg)
    prepared = torch_nn.prepare_training(cfg, p, x, d_output, d_h_n)
    with prepared.context():
        _, got = prepared.fetch(prepared.step())
    name = "nu_log_l0" if cell is Cell.lru else "A_log_l0"
    assert np.all(got[name] == 0)
    np.testing.assert_array_equal(grad.gradients(cfg, p, x, d_output, d_h_n)[name], 0)
