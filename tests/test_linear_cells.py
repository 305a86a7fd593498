"""The linear cells (rnnexp.linear): scans against the loop, each cell against its paper's own code,
backends against the float64 reference, and the configuration rules."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from rnnexp.config import Cell, ConfigError, Dtype, RunConfig, Scan
from rnnexp.linear import cells, numpy_backend, ops, scans, tolerance, torch_backend
from rnnexp.params import make_inputs, make_params, param_shapes
from rnnexp.validation import validate

LINEAR = [Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6]


def small(cell: Cell, **kw) -> RunConfig:
    base = dict(cell=cell, input_size=3, hidden_size=5, timesteps=9, batch_size=2, state_size=4)
    if cell not in (Cell.lru, Cell.s6):
        base.pop("state_size")
    return RunConfig(**(base | kw))


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 13, 64, 100])
@pytest.mark.parametrize("chunk", [1, 3, 4, 64])
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_scans_agree_with_the_loop(steps, chunk, lib):
    rng = np.random.default_rng(steps * 100 + chunk)
    a = rng.uniform(-1, 1, (steps, 3, 2)) + 1j * rng.uniform(-1, 1, (steps, 3, 2))
    b = rng.normal(size=(steps, 3, 2)) + 1j * rng.normal(size=(steps, 3, 2))
    want = np.zeros_like(b)
    h = 0
    for t in range(steps):
        h = a[t] * h + b[t]
        want[t] = h
    conv = (lambda v: torch.from_numpy(v)) if lib == "torch" else (lambda v: v)
    for kind in Scan:
        got = scans.scan(conv(a), conv(b), ops.get(lib), kind, chunk)
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-12, err_msg=kind.value)


def _paper_mingru(x, w, b, hs):
    """Feng et al. 2024, Algorithm (sequential minGRU): z = sigmoid(Linear_z(x)), h~ = Linear_h(x)."""
    h = np.zeros((x.shape[1], hs))
    out = []
    for xt in x:
        k = xt @ w.T + b
        z, h_tilde = 1 / (1 + np.exp(-k[:, :hs])), k[:, hs:]
        h = (1 - z) * h + z * h_tilde
        out.append(h)
    return np.stack(out)


def _paper_minlstm(x, w, b, hs):
    """Feng et al. 2024, sequential minLSTM with length-independent scaling: f' = f / (f + i), i' = i / (f + i)."""
    h = np.zeros((x.shape[1], hs))
    out = []
    for xt in x:
        k = xt @ w.T + b
        f, i = 1 / (1 + np.exp(-k[:, :hs])), 1 / (1 + np.exp(-k[:, hs : 2 * hs]))
        h = f / (f + i) * h + i / (f + i) * k[:, 2 * hs :]
        out.append(h)
    return np.stack(out)


def _paper_lru(x, p):
    """Orvieto et al. 2023, Appendix A's forward: Lambda = exp(-exp(nu) + i exp(theta)), B_norm = B * gamma."""
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b_norm = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
    c = p["C_re"] + 1j * p["C_im"]
    h = np.zeros((x.shape[1], len(lam)), complex)
    out = []
    for xt in x:
        h = lam * h + xt @ b_norm.T
        out.append((h @ c.T).real + xt @ p["D"].T)
    return np.stack(out)


def _selective_scan_ref(u, delta, A, B, C, D, delta_bias):
    """Mamba's selective_scan_ref (mamba_ssm/ops/selective_scan_interface.py), real A, variable B and C, no z."""
    delta = torch.nn.functional.softplus(delta + delta_bias[..., None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2)
    return y + u * D[..., None]


@pytest.mark.parametrize("cell", LINEAR)
def test_each_cell_is_its_papers_recurrence(cell):
    cfg = small(cell, dtype=Dtype.float64, batch_first=False)
    p, x = make_params(cfg), make_inputs(cfg)
    got = numpy_backend.reference(cfg, p, x).output
    q = cells.part_params(cfg, p, 0, 0)
    hs = cfg.hidden_size
    if cell is Cell.mingru:
        want = _paper_mingru(x, q["weight_ih"], q["bias_ih"], hs)
    elif cell is Cell.minlstm:
        want = _paper_minlstm(x, q["weight_ih"], q["bias_ih"], hs)
    elif cell is Cell.lru:
        want = _paper_lru(x, q)
    else:
        r, n = cells.dt_rank(cfg), cfg.state_size
        v = x @ q["in_proj_weight"].T + q["in_proj_bias"]  # (T, B, H)
        xdbl = v @ q["x_proj_weight"].T
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        u = t(v.transpose(1, 2, 0))  # (B, D, L)
        delta = t((xdbl[..., :r] @ q["dt_proj_weight"].T).transpose(1, 2, 0))
        bm, cm = (t(xdbl[..., k].transpose(1, 2, 0)) for k in (slice(r, r + n), slice(r + n, None)))
        y = _selective_scan_ref(u, delta, -torch.exp(t(q["A_log"])), bm, cm, t(q["D"]), t(q["dt_proj_bias"]))
        want = y.numpy().transpose(2, 0, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_lru_eigenvalues_lie_on_the_ring():
    cfg = small(Cell.lru, r_min=0.5, r_max=0.8, max_phase=1.0, state_size=64, dtype=Dtype.float64)
    q = cells.part_params(cfg, make_params(cfg), 0, 0)
    modulus = np.exp(-np.exp(q["nu_log"]))
    phase = np.exp(q["theta_log"])
    assert modulus.min() >= 0.5 - 1e-12 and modulus.max() <= 0.8 + 1e-12
    assert phase.min() >= 0 and phase.max() < 1.0
    np.testing.assert_allclose(np.exp(q["gamma_log"]), np.sqrt(1 - modulus**2))


def test_s6_initialisation_is_mambas():
    cfg = small(Cell.s6, dtype=Dtype.float64)
    q = cells.part_params(cfg, make_params(cfg), 0, 0)
    np.testing.assert_allclose(np.exp(q["A_log"][0]), np.arange(1, cfg.state_size + 1))
    dt = np.logaddexp(0, q["dt_proj_bias"])
    assert (dt >= cells.DT_MIN - 1e-12).all() and (dt <= cells.DT_MAX + 1e-12).all()
    np.testing.assert_array_equal(q["D"], 1.0)


@pytest.mark.parametrize("cell", LINEAR)
def test_param_shapes_match_the_params(cell):
    cfg = small(cell, layers=2, bidirectional=True, bias=False)
    params = make_params(cfg)
    assert {k: v.shape for k, v in params.items()} == param_shapes(cfg)
    assert any(k.endswith("_l1_reverse") for k in params)
    assert "bias_ih_l0" not in params and "in_proj_bias_l0" not in params


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_float64_matches_the_reference(cell, batch_first):
    cfg = small(cell, layers=2, bidirectional=True, batch_first=batch_first, dtype=Dtype.float64)
    p, x = make_params(cfg), make_inputs(cfg)
    ref = numpy_backend.reference(cfg, p, x)
    for kind in Scan:
        cfg = dataclasses.replace(cfg, scan=kind, scan_chunk=4)
        out = torch_backend.prepare(cfg, p, x)
        got = out.fetch(out.call())
        assert got.output.shape == ref.output.shape == ((2, 9, 10) if batch_first else (9, 2, 10))
        np.testing.assert_allclose(got.output, ref.output, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.h_n, ref.h_n, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", LINEAR)
def test_h_n_is_each_parts_last_output(cell):
    cfg = small(cell, layers=2, bidirectional=True, batch_first=False, dtype=Dtype.float64)
    ref = numpy_backend.reference(cfg, make_params(cfg), make_inputs(cfg))
    hs = cfg.hidden_size
    np.testing.assert_array_equal(ref.h_n[2], ref.output[-1, :, :hs])  # top layer, forward: t = T-1
    np.testing.assert_array_equal(ref.h_n[3], ref.output[0, :, hs:])  # top layer, reverse: t = 0
    np.testing.assert_array_equal(ref.h_n[0], ref.layers[0][-1, :, :hs])


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("kind", list(Scan))
def test_float32_within_the_bound(cell, kind):
    cfg = small(cell, timesteps=300, scan=kind, scan_chunk=16)
    p, x = make_params(cfg), make_inputs(cfg)
    ref = numpy_backend.reference(cfg, p, x)
    scale = max(1.0, float(np.abs(ref.output).max()))
    tol = tolerance.relative_tol(cfg, 1e-5) * scale
    for prepared in (numpy_backend.prepare(cfg, p, x), torch_backend.prepare(cfg, p, x)):
        got = prepared.fetch(prepared.call())
        assert got.output.dtype == np.float32
        assert np.abs(got.output - ref.output).max() <= tol


def test_tolerance_grows_with_memory_and_scan_depth():
    lru = small(Cell.lru, timesteps=16384)
    assert tolerance.memory(lru) == pytest.approx(1000)
    assert tolerance.memory(dataclasses.replace(lru, r_max=0.5)) == pytest.approx(2)
    assert tolerance.memory(small(Cell.mingru, timesteps=100)) == 100
    seq = tolerance.relative_tol(dataclasses.replace(lru, r_max=0.9999), 1e-5)
    assert seq == pytest.approx(4 * 2**-24 * (10000 + 2))
    assoc = tolerance.relative_tol(dataclasses.replace(lru, r_max=0.9999, scan=Scan.associative), 1e-5)
    assert assoc == pytest.approx(4 * 2**-24 * (10000 + 4 * 14))
    assert tolerance.relative_tol(dataclasses.replace(lru, dtype=Dtype.float64), 1e-10) == 1e-10
    assert tolerance.relative_tol(small(Cell.mingru, timesteps=10), 1e-5) == 1e-5


def refused(cfg: RunConfig) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "kw, key, says",
    [
        (dict(cell=Cell.lstm, scan=Scan.associative), "scan", "only scan=sequential"),
        (dict(cell=Cell.gru, scan=Scan.chunked), "scan", "only scan=sequential"),
        (dict(cell=Cell.mingru, state_size=8), "state_size", "cell=lru|s6 only"),
        (dict(cell=Cell.rnn, state_size=8), "state_size", "cell=lru|s6 only"),
        (dict(cell=Cell.s6, state_size=0), "state_size", "positive integer"),
        (dict(cell=Cell.lru, r_min=0.9, r_max=0.5), "r_min", "<= r_max"),
        (dict(cell=Cell.lru, r_max=1.0), "r_max", "[0, 1)"),
        (dict(cell=Cell.lru, r_min=-0.1), "r_min", "[0, 1)"),
        (dict(cell=Cell.s6, r_min=0.5), "r_min", "cell=lru only"),
        (dict(cell=Cell.lru, max_phase=0.0), "max_phase", "(0, 2*pi]"),
        (dict(cell=Cell.mingru, scan=Scan.chunked, scan_chunk=0), "scan_chunk", "positive integer"),
        (dict(cell=Cell.minlstm, proj_size=2), "proj_size", "no projection"),
        (dict(cell=Cell.s6, backend="onnxruntime"), "backend", "numpy, torch, jax"),
        (dict(cell=Cell.lru, backend="torch_cell"), "backend", "numpy, torch, jax"),
    ],
)
def test_bad_linear_configs_are_refused_in_one_line(kw, key, says):
    err = refused(RunConfig(**kw))
    assert err.key == key and says in str(err)


def test_good_linear_configs_pass():
    for cell in LINEAR:
        for kind in Scan:
            for backend in ("numpy", "torch"):
                validate(RunConfig(cell=cell, scan=kind, backend=backend))
    validate(RunConfig(cell=Cell.lru, r_min=0.3, r_max=0.3, state_size=8))
    validate(RunConfig(cell=Cell.lstm, scan=Scan.sequential))


def test_forward_flops_count_the_scans_work():
    from rnnexp.flops import backward_flops, forward_flops
    from rnnexp.linear import work

    cfg = small(Cell.mingru, timesteps=1024, batch_size=1, hidden_size=1, input_size=1, bias=False)
    seq = work.scan_flops(cfg)
    assert seq == 2 * 1023
    assoc = work.scan_flops(dataclasses.replace(cfg, scan=Scan.associative))
    chunk = work.scan_flops(dataclasses.replace(cfg, scan=Scan.chunked, scan_chunk=32))
    assert 2.4 * seq < assoc < 2.6 * seq  # ~5T against the loop's 2T
    assert 2.4 * seq < chunk < 2.6 * seq
    assert forward_flops(cfg) == 1024 * (2 * 2 * 1 + 3) + seq
    assert backward_flops(cfg) > forward_flops(cfg)
    lru = small(Cell.lru)
    assert work.scan_flops(lru) == (lru.timesteps - 1) * 8  # a complex multiply-add
    assert work.scan_bytes(dataclasses.replace(cfg, scan=Scan.associative)) > work.scan_bytes(cfg)
    assert math.isfinite(work.forward_bytes(small(Cell.s6)))


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("init", ["uniform01", "normal", "xavier_uniform", "orthogonal"])
def test_every_init_draws_the_dense_weights_and_keeps_the_structure(cell, init):
    from rnnexp.config import Init

    cfg = small(cell, init=Init(init), layers=2)
    params = make_params(cfg)
    assert {k: v.shape for k, v in params.items()} == param_shapes(cfg)
    assert all(np.isfinite(v).all() for v in params.values())
    default = make_params(small(cell, layers=2))
    for name in ("nu_log_l0", "A_log_l0", "dt_proj_bias_l0"):  # the papers' structural parameters stay
        if name in params:
            np.testing.assert_array_equal(params[name], default[name])
    ref = numpy_backend.reference(cfg, params, make_inputs(cfg))
    assert np.isfinite(ref.output).all()


@pytest.mark.slow
def test_cli_runs_a_linear_cell_and_refuses_in_one_line(tmp_path):
    import pandas as pd

    from conftest import run_cli

    done = run_cli(["cell=mingru", "backend=torch", "scan=associative", f"hydra.run.dir={tmp_path}/ok"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    row = pd.read_csv(tmp_path / "ok" / "results.csv").iloc[0]
    assert row["status"] == "ok" and row["parity_ok"] and row["scan"] == "associative" and row["scan_bytes"] > 0
    for args, says in [
        (["cell=lstm", "scan=associative"], "rnnexp: error: scan=associative: cell=lstm is not linear"),
        (["cell=s6", "backend=onnxruntime"], "rnnexp: error: backend=onnxruntime: cannot run cell=s6"),
        (["cell=lru", "r_min=0.99", "r_max=0.5"], "rnnexp: error: r_min=0.99: must be <= r_max"),
        (["cell=mingru", "state_size=4"], "rnnexp: error: state_size=4: applies to cell=lru|s6 only"),
        (["cell=mingru", "scan=chunked", "scan_chunk=0"], "rnnexp: error: scan_chunk=0"),
    ]:
        bad = run_cli([*args, f"hydra.run.dir={tmp_path}/bad"], tmp_path)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.strip().startswith(says) and bad.stderr.strip().count("\n") == 0, bad.stderr
        assert "Traceback" not in bad.stderr and not (tmp_path / "bad" / "results.csv").exists()


def _paper_mingru_log_space(x, w, b, hs):
    """Feng et al. 2024, appendix B: minGRU in log space, parallel_scan_log (Heinsen's cumsum/logcumsumexp), h_0 = 0."""
    k = torch.from_numpy(x @ w.T + b)
    k_z, k_h = k[..., :hs], k[..., hs:]
    log_coeffs = -torch.nn.functional.softplus(k_z)
    log_z = -torch.nn.functional.softplus(-k_z)
    log_tilde_h = torch.where(k_h >= 0, torch.log(torch.relu(k_h) + 0.5), -torch.nn.functional.softplus(-k_h))
    a_star = torch.cumsum(log_coeffs, dim=0)
    log_h = a_star + torch.logcumsumexp(log_z + log_tilde_h - a_star, dim=0)
    return torch.exp(log_h).numpy()


@pytest.mark.parametrize("cell", [Cell.mingru, Cell.minlstm])
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_log_space_scans_match_the_linear_loop(cell, lib):
    cfg = small(cell, log_space=True, layers=2, bidirectional=True, dtype=Dtype.float64, timesteps=37)
    p, x = make_params(cfg), make_inputs(cfg)
    ref = numpy_backend.reference(cfg, p, x)
    assert (ref.layers[0] > 0).all()  # g > 0 and h_0 = 0: every state is positive, as the log form needs
    for kind in (Scan.associative, Scan.chunked):
        cfg = dataclasses.replace(cfg, scan=kind, scan_chunk=5)
        prepared = (numpy_backend if lib == "numpy" else torch_backend).prepare(cfg, p, x)
        got = prepared.fetch(prepared.call())
        np.testing.assert_allclose(got.output, ref.output, rtol=1e-12, atol=1e-13)


def test_log_space_mingru_is_the_papers_parallel_scan_log():
    cfg = small(Cell.mingru, log_space=True, dtype=Dtype.float64, batch_first=False, timesteps=50)
    p, x = make_params(cfg), make_inputs(cfg)
    q = cells.part_params(cfg, p, 0, 0)
    want = _paper_mingru_log_space(x, q["weight_ih"], q["bias_ih"], cfg.hidden_size)
    for kind in Scan:
        got = numpy_backend.forward(dataclasses.replace(cfg, scan=kind), p, x, kind).output
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=0)


def test_log_space_applies_to_the_min_cells_only():
    err = refused(RunConfig(cell=Cell.lru, log_space=True))
    assert err.key == "log_space" and "mingru|minlstm" in str(err)


def test_the_reference_is_shared_across_scans():
    from rnnexp import refcache

    cfg = small(Cell.s6)
    p, x = make_params(cfg), make_inputs(cfg)
    keys = {refcache.reference_key(dataclasses.replace(cfg, scan=k, scan_chunk=c), p, x) for k in Scan for c in (3, 64)}
    assert len(keys) == 1
    assert refcache.reference_key(dataclasses.replace(cfg, state_size=5), p, x) not in keys
