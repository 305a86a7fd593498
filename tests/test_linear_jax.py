"""The linear cells on jax: every scan against the float64 reference, and jax.grad against the hand-written BPTT."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from rnnexp.backends import jax_scan  # noqa: E402
from rnnexp.backends.training import cotangents  # noqa: E402
from rnnexp.config import Cell, Dtype, RunConfig, Scan  # noqa: E402
from rnnexp.linear import grad, numpy_backend, tolerance  # noqa: E402
from rnnexp.params import make_inputs, make_params  # noqa: E402

pytestmark = pytest.mark.slow  # each case compiles with XLA: ~5 s apiece on this machine

LINEAR = [Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6]


def config(cell: Cell, **kw) -> RunConfig:
    base = dict(cell=cell, input_size=3, hidden_size=5, timesteps=13, batch_size=2, layers=2, bidirectional=True)
    return RunConfig(**(base | dict(backend="jax", scan_chunk=4) | kw))


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("kind", list(Scan))
@pytest.mark.parametrize("dtype", list(Dtype))
def test_jax_forward_matches_the_reference(cell, kind, dtype):
    cfg = config(cell, scan=kind, dtype=dtype, batch_first=kind is not Scan.chunked)
    p, x = make_params(cfg), make_inputs(cfg)
    ref = numpy_backend.reference(cfg, p, x)
    prepared = jax_scan.prepare(cfg, p, x)
    got = prepared.fetch(prepared.call())
    assert got.output.dtype == np.dtype(dtype.value) and got.output.shape == ref.output.shape
    scale = max(1.0, float(np.abs(ref.output).max()))
    tol = tolerance.relative_tol(cfg, 1e-5 if dtype is Dtype.float32 else 1e-12) * scale
    assert np.abs(got.output - ref.output).max() <= tol
    assert np.abs(got.h_n - ref.h_n).max() <= tol


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("kind", [Scan.sequential, Scan.associative, Scan.chunked])
def test_jax_grad_matches_the_bptt_in_float64(cell, kind):
    cfg = config(cell, scan=kind, dtype=Dtype.float64, timesteps=7)
    p, x = make_params(cfg), make_inputs(cfg)
    d_output, d_h_n, _ = cotangents(cfg)
    want = grad.gradients(cfg, p, x, d_output, d_h_n)
    prepared = jax_scan.prepare_training(cfg, p, x, d_output, d_h_n)
    with prepared.context():
        _, got = prepared.fetch(prepared.step())
    assert set(got) == set(want)
    for name, value in want.items():
        assert np.abs(got[name] - value).max() <= 1e-10 * max(1.0, np.abs(value).max()), name


@pytest.mark.parametrize("cell", [Cell.mingru, Cell.minlstm])
@pytest.mark.parametrize("kind", [Scan.associative, Scan.chunked])
def test_jax_log_space_forward_and_grad(cell, kind):
    cfg = config(cell, scan=kind, log_space=True, dtype=Dtype.float64, timesteps=9)
    p, x = make_params(cfg), make_inputs(cfg)
    ref = numpy_backend.reference(cfg, p, x)
    prepared = jax_scan.prepare(cfg, p, x)
    np.testing.assert_allclose(prepared.fetch(prepared.call()).output, ref.output, rtol=1e-12, atol=1e-13)
    d_output, d_h_n, _ = cotangents(cfg)
    want = grad.gradients(cfg, p, x, d_output, d_h_n)
    training = jax_scan.prepare_training(cfg, p, x, d_output, d_h_n)
    with training.context():
        _, got = training.fetch(training.step())
    for name, value in want.items():
        assert np.abs(got[name] - value).max() <= 1e-10 * max(1.0, np.abs(value).max()), name
