import numpy as np
import pytest

from rnnexp.params import (
    expected_c_n_shape,
    expected_h_n_shape,
    expected_output_shape,
    make_inputs,
    make_params,
    param_shapes,
)


def test_tutorial_defaults(cfg_of):
    cfg = cfg_of()
    assert (cfg.timesteps, cfg.input_size, cfg.hidden_size, cfg.batch_size, cfg.layers) == (10, 5, 8, 1, 1)
    assert cfg.batch_first and not cfg.bidirectional and cfg.nonlinearity.value == "tanh"
    assert expected_output_shape(cfg) == (1, 10, 8)
    assert expected_h_n_shape(cfg) == (1, 1, 8)


@pytest.mark.parametrize(
    "overrides, output, h_n",
    [
        ([], (1, 10, 8), (1, 1, 8)),
        (["layers=2"], (1, 10, 8), (2, 1, 8)),
        (["layers=2", "bidirectional=true"], (1, 10, 16), (4, 1, 8)),
        (["batch_first=false", "batch_size=3"], (10, 3, 8), (1, 3, 8)),
        (["cell=lstm", "proj_size=3", "bidirectional=true"], (1, 10, 6), (2, 1, 3)),
    ],
)
def test_expected_shapes(cfg_of, overrides, output, h_n):
    cfg = cfg_of(*overrides)
    assert expected_output_shape(cfg) == output
    assert expected_h_n_shape(cfg) == h_n


def test_c_n_shape_is_unprojected(cfg_of):
    assert expected_c_n_shape(cfg_of("cell=lstm", "proj_size=3", "layers=2")) == (2, 1, 8)
    assert expected_c_n_shape(cfg_of("cell=gru")) is None


def test_param_layout_matches_torch(cfg_of):
    torch = pytest.importorskip("torch")
    cfg = cfg_of("cell=lstm", "layers=2", "bidirectional=true", "proj_size=3")
    module = torch.nn.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3, batch_first=True)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == param_shapes(cfg)


def test_seeded_and_real(cfg_of):
    a, b = make_params(cfg_of("seed=3")), make_params(cfg_of("seed=3"))
    c = make_params(cfg_of("seed=4"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["weight_hh_l0"], c["weight_hh_l0"])
    x = make_inputs(cfg_of())
    assert x.dtype == np.float32 and np.isfinite(x).all() and x.std() > 0.5
