"""Random valid configurations: shapes follow the documented formulas and every backend matches torch.nn."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnexp.config import Cell, Dtype, Nonlinearity, RunConfig
from rnnexp.params import expected_c_n_shape, expected_h_n_shape, expected_output_shape, make_inputs
from rnnexp.runner import PARITY_TOL, max_abs_err
from test_backends import run_backend, torch_outputs


@st.composite
def configs(draw) -> RunConfig:
    cell = draw(st.sampled_from([Cell.rnn, Cell.lstm, Cell.gru]))  # linear cells: tests/test_linear_cells.py
    hidden = draw(st.integers(1, 12))
    return RunConfig(
        cell=cell,
        input_size=draw(st.integers(1, 9)),
        hidden_size=hidden,
        layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        timesteps=draw(st.integers(1, 12)),
        batch_size=draw(st.integers(1, 4)),
        batch_first=draw(st.booleans()),
        bias=draw(st.booleans()),
        nonlinearity=draw(st.sampled_from(list(Nonlinearity))) if cell is Cell.rnn else Nonlinearity.tanh,
        proj_size=draw(st.integers(0, hidden - 1)) if cell is Cell.lstm else 0,
        dtype=draw(st.sampled_from(list(Dtype))),
        seed=draw(st.integers(0, 2**31)),
        backend=draw(st.sampled_from(["numpy", "numpy_naive", "torch", "torch_cell"])),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_shapes_and_parity(cfg):
    got = run_backend(cfg)
    assert got.output.shape == expected_output_shape(cfg)
    assert got.h_n.shape == expected_h_n_shape(cfg)
    assert (got.c_n.shape if got.c_n is not None else None) == expected_c_n_shape(cfg)
    want = torch_outputs(cfg)
    # float32: each side is within PARITY_TOL of the exact result, so of each other within twice that.
    tol = 1e-10 if cfg.dtype is Dtype.float64 else 2 * PARITY_TOL["float32"]
    scale = max(1.0, float(abs(want.output).max()), float(abs(want.h_n).max()))
    assert max_abs_err(got, want) <= tol * scale
    assert make_inputs(cfg).shape == ((cfg.batch_size, cfg.timesteps, cfg.input_size) if cfg.batch_first
                                      else (cfg.timesteps, cfg.batch_size, cfg.input_size))  # fmt: skip
